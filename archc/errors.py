"""Located errors: every problem a user can cause is reported as ``file:line:col: message``."""

from __future__ import annotations

from typing import NamedTuple


class Loc(NamedTuple):
    """A position in a source file (1-based line and column). A named tuple: the loader makes one per
    YAML value, and a tuple is three times cheaper to create than a frozen dataclass."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ArchcError(Exception):
    """An error in user input; the CLI prints it and exits with status 2."""

    def __init__(self, message: str, loc: Loc | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


class InternalError(ArchcError):
    """Something archc itself got wrong (e.g. an emitter produced code that does not compile): exit status 3."""


def suggest(word: str, choices) -> str:
    """A ' (did you mean ...?)' hint naming the closest valid choice, or ''."""
    import difflib

    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
