"""The store over an S3 API: AWS for upsert, or a moto server, MinIO or LocalStack (AWS_ENDPOINT_URL) for
`make local`. The same interface as the local store, never a subclass of it."""

from __future__ import annotations

from pathlib import Path

from pipelines.store.base import StoreError, split_uri

MISSING = ("404", "NoSuchKey", "NotFound")


class S3Store:
    def __init__(self, client=None, endpoint: str | None = None):
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint)
        self.client, self.endpoint = client, endpoint
        self.local_root: Path | None = None  # objects live on the endpoint

    def _keys(self, uri: str) -> list[str]:
        return [key for key, _, _ in self.listing(uri)]

    def exists(self, uri: str) -> bool:
        """An object at the key (one HEAD), else any object under it (S3's prefix, as the local store's folders)."""
        from botocore.exceptions import ClientError

        bucket, key = split_uri(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") not in MISSING:
                raise StoreError(f"cannot read {uri}: {exc.response.get('Error', {}).get('Message') or exc}") from None
        return bool(self._keys(uri))

    def listing(self, uri: str) -> list[tuple[str, int, str]]:
        from botocore.exceptions import ClientError

        bucket, key = split_uri(uri)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        try:
            return [(o["Key"], o["Size"], o["ETag"]) for page in pages for o in page.get("Contents", [])]
        except ClientError as exc:
            raise StoreError(f"cannot list {uri}: {exc.response.get('Error', {}).get('Message') or exc}") from None

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
        return self.endpoint or "AWS S3"

    def local_path(self, uri: str) -> Path | None:
        return None
