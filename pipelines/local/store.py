"""The local artifact store: s3://bucket/key ↔ <root>/bucket/key, with S3's prefix semantics.

With AWS_ENDPOINT_URL set (a moto server, MinIO, LocalStack) the same calls go to that endpoint.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class LocalStore:
    def __init__(self, root: Path):
        self.root = Path(root)

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
            (shutil.copytree(match, dest / match.name, dirs_exist_ok=True) if match.is_dir()
             else shutil.copy2(match, dest / match.name))
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


class S3Store(LocalStore):
    """The same interface over a real S3 API endpoint."""

    def __init__(self, endpoint: str):
        import boto3

        self.client = boto3.client("s3", endpoint_url=endpoint)
        self.endpoint = endpoint

    def _keys(self, uri: str) -> list[str]:
        bucket, key = split_uri(uri)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def exists(self, uri: str) -> bool:
        return bool(self._keys(uri))

    def listing(self, uri: str) -> list[tuple[str, int, str]]:
        bucket, key = split_uri(uri)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return [(o["Key"], o["Size"], o["ETag"]) for page in pages for o in page.get("Contents", [])]

    def download(self, uri: str, dest: Path) -> int:
        bucket, key = split_uri(uri)
        keys = self._keys(uri)
        for k in keys:
            rel = k[len(key):].lstrip("/") if k != key else Path(k).name
            target = dest / (rel or Path(k).name)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(bucket, k, str(target))
        return len(keys)

    def upload(self, src: Path, uri: str) -> None:
        bucket, key = split_uri(uri)
        files = [p for p in sorted(src.rglob("*")) if p.is_file()] if src.is_dir() else [src]
        for f in files:
            rel = f.relative_to(src).as_posix() if src.is_dir() else ""
            self.client.upload_file(str(f), bucket, f"{key.rstrip('/')}/{rel}" if rel else key)

    def put_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = split_uri(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def describe(self) -> str:
        return self.endpoint


def open_store(root: Path) -> LocalStore:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return S3Store(endpoint) if endpoint else LocalStore(root)
