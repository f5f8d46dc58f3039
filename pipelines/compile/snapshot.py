"""What a start sees of a mutable s3:// DataSource: the digest of its listing (every key, size and ETag), passed
as the DataSnapshot parameter, so SageMaker's cache (which keys on a step's arguments, never on the data) runs
Reconcile again exactly when the objects under the prefix changed. A local DataSource needs none: it is
staged under the digest of its bytes."""

from __future__ import annotations

import hashlib

from pipelines.compile.plan import Plan

UNLISTED = "-"


def needs_listing(plan: Plan, source: str) -> bool:
    """An s3:// DataSource the plan did not stage itself (those are content-addressed already)."""
    return source.startswith("s3://") and source not in plan.uploads


def digest(listing: list[tuple[str, int, str]]) -> str:
    """(key, size, etag) of every object, in any order → a short stable digest."""
    h = hashlib.sha256()
    for key, size, etag in sorted(listing):
        h.update(f"{key}\0{size}\0{etag.strip(chr(34))}\n".encode())
    return h.hexdigest()[:16]


def data_snapshot(plan: Plan, values: dict, list_objects) -> tuple[dict, str]:
    """``values`` with DataSnapshot filled in where a listing is needed and none was given, and a line saying so;
    ``list_objects(uri)`` lists the prefix. A prefix with no objects is refused before anything starts."""
    source = str(values.get("DataSource", plan.parameters["DataSource"].default))
    if "DataSnapshot" in values or not needs_listing(plan, source):
        return values, ""
    listing = list_objects(source)
    if not listing:
        from pipelines.spec.errors import fail

        raise fail("<command line>", f"DataSource {source} holds no objects", hint="check the prefix (and its final /)")
    value = digest(listing)
    return {**values, "DataSnapshot": value}, f"DataSource {source}: {len(listing)} objects, listing {value}"
