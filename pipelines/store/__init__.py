"""Where a pipeline's objects live: the local store (a folder laid out as s3://bucket/key) and the S3 store
(AWS, or a moto server), siblings behind one interface (base.py). `make local`, the local executor and
`make pipeline-upsert` use them alike; nothing here knows a spec, a plan or a step."""


def open_store(root):
    """The S3 store when AWS_ENDPOINT_URL(_S3) names an endpoint (a moto server, MinIO), else the local one."""
    import os
    from pathlib import Path

    from pipelines.store.local import LocalStore
    from pipelines.store.s3 import S3Store

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return S3Store(endpoint=endpoint) if endpoint else LocalStore(Path(root))
