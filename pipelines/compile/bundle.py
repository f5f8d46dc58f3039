"""The code bundle (steps/ plus the experiment's code, a byte-reproducible tar.gz) and content digests of
every local folder the spec names, over every byte.

The bundle holds what the jobs import: steps/ and the experiment folder, less experiment.yaml (only the
compiler reads it: a hyperparameter edit must not change the code every step runs) and less the folders the
spec stages separately (its data, transform input, notebooks). A file too large for code is refused with
its name, never dropped. Digests of large folders are remembered by path, size and mtime
(``DigestCache``), so a compile re-reads only what changed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
SKIP_FILES = {"experiment.yaml"}
MAX_FILE_BYTES = 2 * 1024 * 1024


class BundleError(Exception):
    """A file the bundle cannot carry; ``path`` names it."""

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path


def files(root: Path, experiment_dir: Path, staged: tuple[Path, ...] = ()) -> list[tuple[str, Path]]:
    """(archive name, path) pairs in a stable order; ``staged``: folders and files the spec uploads itself."""
    staged = tuple(p.resolve() for p in staged)
    pairs = []
    for base, prefix in ((root / "steps", "steps"), (experiment_dir, "experiment")):
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if path.is_dir() or any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
                continue
            if path.suffix in SKIP_SUFFIXES or (prefix == "experiment" and rel.as_posix() in SKIP_FILES):
                continue
            if _inside(path.resolve(), staged):
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                raise BundleError(path, f"{path} is {path.stat().st_size / 2**20:.1f} MiB: the code bundle carries code "
                                  f"(at most {MAX_FILE_BYTES // 2**20} MiB a file), and every job downloads it")
            pairs.append((f"{prefix}/{rel.as_posix()}", path))
    return pairs


def _inside(path: Path, staged: tuple[Path, ...]) -> bool:
    return any(path == s or s in path.parents for s in staged)


def build(root: Path, experiment_dir: Path, staged: tuple[Path, ...] = ()) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in files(root, experiment_dir, staged):
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


class DigestCache:
    """File digests remembered by (absolute path, size, mtime in ns): a changed file has a new size or mtime,
    so it is read again; an unchanged one is not. ``None`` as the file: nothing is remembered."""

    def __init__(self, path: Path | None = None):
        self.path, self.entries, self.changed = path, {}, False
        if path is not None and path.is_file():
            try:
                self.entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        if key not in self.entries:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(4 * 2**20), b""):
                    h.update(block)
            self.entries[key], self.changed = h.hexdigest(), True
        return self.entries[key]

    def save(self) -> None:
        """Best effort: a read-only project still compiles, it only re-reads next time."""
        if self.path is None or not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.entries), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass


class PathDigests(DigestCache):
    """For golden definitions only: a folder's "digest" is its path under the project and a step's code
    identity its kind, so the committed JSON is the same on every machine (whether `make model` ran there or
    not) and changes with the definition's structure, not with every edit of steps/."""

    def __init__(self, root: Path):
        super().__init__(None)
        self.root = root

    @staticmethod
    def code(kind: str) -> str:
        return hashlib.sha256(f"golden code identity of {kind}".encode()).hexdigest()

    def folder(self, folder: Path) -> str:
        return hashlib.sha256(folder.resolve().relative_to(self.root.resolve()).as_posix().encode()).hexdigest()


def folder_digest(folder: Path, cache: DigestCache | None = None) -> str:
    """A content address for a local folder or file: every file's relative path, size and sha256 of every byte."""
    cache = cache or DigestCache()
    if isinstance(cache, PathDigests):
        return cache.folder(folder)
    h = hashlib.sha256()
    paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    for path in paths:
        name = path.relative_to(folder).as_posix() if path != folder else path.name
        h.update(f"{name}\0{path.stat().st_size}\0{cache.file(path)}\0".encode())
    return h.hexdigest()
