"""File-system questions about paths a user wrote: a name the file system refuses (too long, a NUL byte) is
an answer ("no such file"), never an OSError traceback. Every path the spec names is asked through these."""

from __future__ import annotations

from pathlib import Path

MAX_PATH = 1024  # longer, or a part over 255 characters, is a name no file system we run on holds


def too_long(value: str) -> bool:
    return len(value) > MAX_PATH or any(len(part) > 255 for part in value.split("/"))


def exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # ENAMETOOLONG, ELOOP; ValueError: an embedded NUL byte
        return False


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the path made absolute where the file system cannot resolve it."""
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError):
        return path.absolute()
