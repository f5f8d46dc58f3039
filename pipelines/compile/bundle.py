"""The code bundle: steps/ plus the experiment folder, as a byte-reproducible tar.gz.

Its sha256 names it (``code/<sha256>.tar.gz``), so the same code always gets the same URI and the
same step cache keys, and an upload happens only when the code changed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "data", "outputs"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
MAX_FILE_BYTES = 2 * 1024 * 1024


def files(root: Path, experiment_dir: Path) -> list[tuple[str, Path]]:
    """(archive name, path) pairs in a stable order."""
    pairs = []
    for base, prefix in ((root / "steps", "steps"), (experiment_dir, "experiment")):
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if path.is_dir() or any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
                continue
            if path.suffix in SKIP_SUFFIXES or path.stat().st_size > MAX_FILE_BYTES:
                continue
            pairs.append((f"{prefix}/{rel.as_posix()}", path))
    return pairs


def build(root: Path, experiment_dir: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in files(root, experiment_dir):
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


WHOLE_FILE_BYTES = 8 * 1024 * 1024
EDGE_BYTES = 4 * 1024 * 1024


def folder_digest(folder: Path) -> str:
    """A content address for a local folder: every file's path and size, small files hashed whole, large ones
    by their first and last 4 MiB (a compile stays fast on gigabytes; a changed file changes the address)."""
    h = hashlib.sha256()
    paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    for path in paths:
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix() if path != folder else path.name}\0{size}\0".encode())
        with path.open("rb") as fh:
            if size <= WHOLE_FILE_BYTES:
                h.update(fh.read())
            else:
                h.update(fh.read(EDGE_BYTES))
                fh.seek(size - EDGE_BYTES)
                h.update(fh.read(EDGE_BYTES))
    return h.hexdigest()
