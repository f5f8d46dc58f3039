"""The local artifact store: s3://bucket/key ↔ <root>/bucket/key, with S3's prefix semantics."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipelines.store.base import split_uri


class LocalStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.local_root: Path | None = self.root

    def local_path(self, uri: str) -> Path:
        """Where the object or prefix lies on this machine (summaries print it)."""
        return self.path(uri)

    def path(self, uri: str) -> Path:
        bucket, key = split_uri(uri)
        return self.root / bucket / key

    def exists(self, uri: str) -> bool:
        return self.path(uri).exists()

    def download(self, uri: str, dest: Path) -> int:
        """Copy the object, or every object under the prefix, into ``dest``; returns files copied."""
        src = self.path(uri)
        dest.mkdir(parents=True, exist_ok=True)
        if src.is_file():
            shutil.copy2(src, dest / src.name)
            return 1
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
            return sum(1 for p in dest.rglob("*") if p.is_file())
        # a key prefix that is not a "folder": match siblings that start with it
        parent, stem = src.parent, src.name
        matches = sorted(p for p in parent.glob(stem + "*")) if parent.is_dir() else []
        for match in matches:
            if match.is_dir():
                shutil.copytree(match, dest / match.name, dirs_exist_ok=True)
            else:
                shutil.copy2(match, dest / match.name)
        return len(matches)

    def listing(self, uri: str) -> list[tuple[str, int, str]]:
        """(key, size, etag) under the prefix; the etag here is the md5 of the bytes, as S3's for a plain PUT."""
        import hashlib

        bucket, key = split_uri(uri)
        base = self.root / bucket
        src = self.path(uri)
        found = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else []
        return [(p.relative_to(base).as_posix(), p.stat().st_size, hashlib.md5(p.read_bytes()).hexdigest())
                for p in found if not p.name.startswith(".")]

    def upload(self, src: Path, uri: str) -> None:
        target = self.path(uri)
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)

    def put_bytes(self, uri: str, data: bytes) -> None:
        """Whole or not at all, as an S3 PUT: a copy cut short never leaves a key that looks present."""
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)

    def describe(self) -> str:
        return str(self.root)
