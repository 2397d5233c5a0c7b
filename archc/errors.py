"""Located errors: every problem a user can cause is reported as ``file:line:col: message``.

An error may carry notes, printed after its first line the way rustc and clang print them::

    specs/densenet169.yaml:16:16: out must be a positive integer, got -12 (from param 'growth_rate' = -3)
    <archc stdlib>/densenet.yaml:10:34: note: used here: out = ${bn_size * growth_rate} = -12 with ...
    specs/densenet169.yaml:32:5: note: in block 'dense_block', called here

The first line is always ``file:line:col: message`` (the primary location: where the bad value was
written), so tools that read only the first line keep working.

A spec's independent errors are reported together (:class:`ErrorList`), in the order of their places in the
files, at most :data:`MAX_ERRORS` of them, then a count (as clang's ``-ferror-limit``)::

    spec.yaml:4:20: unknown key 'kernal' in 'conv' (did you mean 'kernel'?)
    spec.yaml:6:17: out must be a positive integer, got -8
    spec.yaml:7:5: unknown block or kind 'reshape' (primitives: ...)
    spec.yaml: 3 errors
"""

from __future__ import annotations

from typing import NamedTuple


class Loc(NamedTuple):
    """A position in a source file (1-based line and column). A named tuple: the loader makes one per
    YAML value, and a tuple is three times cheaper to create than a frozen dataclass.

    A value given on the command line has the file ``--set KEY=VALUE`` (the argument as written),
    line 1, and the column of the value inside the argument (column 1 for a problem with the key)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ArchcError(Exception):
    """An error in user input; the CLI prints it and exits with status 2.

    ``attr`` and ``check`` describe a failed value check (the attribute checked and a predicate a good
    value passes): lowering uses them to find where a bad value came from. ``notes`` are
    ``(loc or None, text)`` pairs printed after the first line.
    """

    def __init__(self, message: str, loc: Loc | None = None, *, notes=(), attr: str | None = None, check=None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.notes: list[tuple[Loc | None, str]] = list(notes)
        self.attr = attr
        self.check = check
        self.explained = False  # lowering has looked for the cause of this value check already
        self.primary_moved = False  # the location is the value's origin, not its use

    def note(self, loc: Loc | None, text: str) -> None:
        self.notes.append((loc, text))

    @property
    def first_line(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message

    def __str__(self) -> str:
        lines = [self.first_line]
        lines += [f"{loc}: note: {text}" if loc else f"note: {text}" for loc, text in self.notes]
        return "\n".join(lines)


MAX_ERRORS = 20  # errors shown for one spec; the rest are counted (clang's -ferror-limit is 20 too)


class ErrorList(ArchcError):
    """Several independent errors of one spec, found in one run. Its message, location and notes are the first
    error's (an API caller catching ArchcError sees the first one); printed, it is every error with its notes
    (at most :data:`MAX_ERRORS`), then a line counting them (``spec.yaml: 3 errors``)."""

    def __init__(self, errors: list[ArchcError], file: str):
        first = errors[0]
        super().__init__(first.message, first.loc, notes=first.notes, attr=first.attr, check=first.check)
        self.errors = list(errors)
        self.file = file

    def __str__(self) -> str:
        lines = [str(e) for e in self.errors[:MAX_ERRORS]]
        n = len(self.errors)
        more = f"; the first {MAX_ERRORS} shown, {n - MAX_ERRORS} more not shown" if n > MAX_ERRORS else ""
        lines.append(f"{self.file}: {n} errors{more}")
        return "\n".join(lines)


def collect(errors: list[ArchcError], file: str) -> ArchcError:
    """The errors of one spec as one exception: the same error found twice (the same first line) kept once, and
    so is one bad value written once (a param's, an argument's: where the errors were traced back to) that fails
    at several uses; in the order of their places (the spec file first, then other files such as an ``extends``
    base, then ``--set`` arguments; an error with no place last). One error is itself, as when checking stopped
    at it."""
    seen, unique = set(), []
    for e in errors:
        key = ("value written at", e.loc) if e.primary_moved else e.first_line
        if key not in seen:
            seen.add(key)
            unique.append(e)

    def place(e: ArchcError):
        if e.loc is None:
            return (3, "", 0, 0)
        rank = 0 if e.loc.file == file else 2 if e.loc.file.startswith("--set ") else 1
        return (rank, e.loc.file, e.loc.line, e.loc.col)

    unique.sort(key=place)  # stable: errors at one place keep the order they were found in
    return unique[0] if len(unique) == 1 else ErrorList(unique, file)


class InternalError(ArchcError):
    """Something archc itself got wrong (e.g. an emitter produced code that does not compile): exit status 3."""


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (adjacent transpositions count one), or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def suggest(word: str, choices) -> str:
    """A ' (did you mean ...?)' hint naming the closest of ``choices`` (things of the kind ``word`` should have
    been: keys for a key, kinds and blocks for an item), or ''. Close as rustc counts it: at most one edit per
    three characters (``kernal`` -> ``kernel``, ``gorwth_rate`` -> ``growth_rate``), or the same word in
    another case; never a word that merely shares letters (``depth`` is not ``width``, ``reshape`` not ``repeat``)."""
    best = closest(word, choices)
    return f" (did you mean '{best}'?)" if best is not None else ""


def closest(word: str, choices) -> str | None:
    """The one of ``choices`` that ``word`` is a typo of (see :func:`suggest`), or None."""
    word = str(word)
    limit = max(len(word), 3) // 3
    best, best_d = None, limit + 1
    for c in sorted(map(str, choices)):
        d = 0 if c.lower() == word.lower() else edit_distance(word, c, limit)
        if d < best_d and (d < len(word) or d == 0):  # 'x' is not a typo of 'y'
            best, best_d = c, d
    return best if best != word else None


def listing(categories: dict) -> str:
    """``' (primitives: a, b; combinators: c)'``: the valid choices by category, empty categories left out."""
    parts = [f"{cat}: {', '.join(sorted(names))}" for cat, names in categories.items() if names]
    return f" ({'; '.join(parts)})" if parts else ""
