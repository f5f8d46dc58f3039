"""One error type for everything a user can get wrong; it carries every problem found."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        field = f" {self.path}:" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}:{field} {self.message}{hint}"


class SpecError(Exception):
    """Raised with all problems at once; the CLI prints them and exits 2."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.path, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


def fail(file: str, message: str, *, line: int = 1, column: int = 1, path: str = "", hint: str = "") -> SpecError:
    return SpecError([Problem(file, line, column, path, message, hint)])


SHOWN_CHARS = 60


def shown(value) -> str:
    """A user's value as it may appear in a message: short, and never a secret."""
    from pipelines.spec.secrets_check import looks_like_secret

    text = str(value)
    if looks_like_secret(text):
        return "(a value that looks like a secret; not shown)"
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…")
