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


def suggest(word: str, choices) -> str:
    """A ' (did you mean ...?)' hint naming the closest valid choice, or ''."""
    import difflib

    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
