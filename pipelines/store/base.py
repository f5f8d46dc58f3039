"""What every store offers: the interface `make local`, the local executor and upsert use alike."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class StoreError(Exception):
    """A store refused a call (no access, no bucket): a platform problem, printed without a traceback."""


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class Store(Protocol):
    local_root: Path | None  # the folder that holds the objects, where they are on this machine

    def exists(self, uri: str) -> bool:
        """An object at the key, or (for a prefix ending in /) any object under it."""

    def listing(self, uri: str) -> list[tuple[str, int, str]]:
        """(key, size, etag) of every object under the prefix."""

    def download(self, uri: str, dest: Path) -> int:
        """Copy the object, or every object under the prefix, into ``dest``; returns files copied."""

    def upload(self, src: Path, uri: str) -> None: ...

    def put_bytes(self, uri: str, data: bytes) -> None:
        """Whole or not at all, as an S3 PUT."""

    def local_path(self, uri: str) -> Path | None:
        """The object's path on this machine, if it has one."""

    def describe(self) -> str: ...
