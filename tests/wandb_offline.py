"""Reads what an offline wandb run wrote (its .wandb file), so tests check the real run, not a mock.

The file is wandb's record log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of chunks, each
a 7-byte head (CRC-32, length, kind: 1 whole, 2 first, 3 middle, 4 last) and a piece of one protobuf Record.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEAD = 32768, 7


def _chunks(data: bytes):
    pos, pending = HEAD, b""
    while pos + HEAD <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEAD:  # a block's tail too short for a head is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEAD])
        pending += data[pos + HEAD:pos + HEAD + length]
        pos += HEAD + length
        if kind in (1, 4):
            yield pending
            pending = b""


def read_run(run_file: Path) -> dict:
    """The run's group, job type, tags, name, config, logged keys and files."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(run_file).read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a wandb run file"
    run = {"config": {}, "logged": set(), "files": set()}
    for chunk in _chunks(data):
        record = pb.Record()
        record.ParseFromString(chunk)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(group=r.run_group, job_type=r.job_type, tags=list(r.tags), name=r.display_name)
            run["config"].update({i.key: json.loads(i.value_json) for i in r.config.update if i.key != "_wandb"})
        elif kind == "history":
            run["logged"] |= {i.key or i.nested_key[0] for i in record.history.item}
        elif kind == "files":
            run["files"] |= {f.path for f in record.files.files}
    return run


def runs_under(folder: Path) -> list[dict]:
    return [read_run(f) | {"folder": f.parent} for f in sorted(Path(folder).rglob("offline-run-*/run-*.wandb"))]
