"""The one staging path of `make local` and `make pipeline-upsert`: every object a definition reads that is
made from local files, listed once. Keys are content-addressed (each step's code URI holds the bundle, every
local folder the spec names lies under the digest of its bytes), so a key that exists holds these bytes:
both stores put only the missing ones, and a stale upload can never be reused for changed content."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipelines.compile.plan import Plan


def objects(plan: Plan) -> Iterator[tuple[str, bytes | Path]]:
    """(s3 URI of one object, its bytes or the local file holding them), in a stable order."""
    for uri in sorted(set(plan.code_uris.values())):
        yield uri, plan.code_bundle
    for uri, path in sorted(plan.uploads.items()):
        if path.is_file():
            yield (uri if not uri.endswith("/") else uri + path.name), path
            continue
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield uri.rstrip("/") + "/" + file.relative_to(path).as_posix(), file


def content(source: bytes | Path) -> bytes:
    return source if isinstance(source, bytes) else source.read_bytes()


def put_missing(plan: Plan, store) -> dict[str, int]:
    """Put every object of ``objects`` that ``store`` (pipelines/store/base.py) lacks; how many, by kind."""
    sent = {"code": 0, "assets": 0}
    code = set(plan.code_uris.values())
    for uri, source in objects(plan):
        if not store.exists(uri):
            store.put_bytes(uri, content(source))
            sent["code" if uri in code else "assets"] += 1
    return sent
