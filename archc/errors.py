"""Located errors: every problem a user can cause is reported as ``file:line:col: message``.

An error may carry notes, printed after its first line the way rustc and clang print them::

    specs/densenet169.yaml:16:16: out must be a positive integer, got -12 (from param 'growth_rate' = -3)
    <archc stdlib>/densenet.yaml:10:34: note: used here: out = ${bn_size * growth_rate} = -12 with ...
    specs/densenet169.yaml:32:5: note: in block 'dense_block', called here

The first line is always ``file:line:col: message`` (the primary location: where the bad value was
written), so tools that read only the first line keep working.
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
    word = str(word)
    limit = max(len(word), 3) // 3
    best, best_d = None, limit + 1
    for c in sorted(map(str, choices)):
        d = 0 if c.lower() == word.lower() else edit_distance(word, c, limit)
        if d < best_d and (d < len(word) or d == 0):  # 'x' is not a typo of 'y'
            best, best_d = c, d
    return f" (did you mean '{best}'?)" if best is not None and best != word else ""


def listing(categories: dict) -> str:
    """``' (primitives: a, b; combinators: c)'``: the valid choices by category, empty categories left out."""
    parts = [f"{cat}: {', '.join(sorted(names))}" for cat, names in categories.items() if names]
    return f" ({'; '.join(parts)})" if parts else ""
