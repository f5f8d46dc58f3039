"""Where a benchmark's result goes and what it records about itself: the file is named
``<date>-<commit>-<machine>-<bench>.json`` and never overwritten (a second run the same day gets ``-2``), and
it records the commit (and whether the tree had uncommitted changes), the machine and the package versions
actually imported."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "transformers", "accelerate", "datasets", "tokenizers", "sagemaker", "fastapi", "uvicorn")


def commit() -> tuple[str, bool]:
    """The checkout's commit, or SMPIPE_COMMIT where the tree was copied without its .git (the GPU machine)."""
    if os.environ.get("SMPIPE_COMMIT"):
        return os.environ["SMPIPE_COMMIT"], os.environ.get("SMPIPE_UNCOMMITTED") == "1"

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return run.stdout.strip()

    return git("rev-parse", "--short=8", "HEAD") or "unknown", bool(git("status", "--porcelain", "--untracked-files=no"))


def machine() -> str:
    name = os.environ.get("SMPIPE_MACHINE") or f"{platform.machine()}-{os.cpu_count()}cpu"
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower()


def provenance() -> dict:
    sha, dirty = commit()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"commit": sha, "uncommitted_changes": dirty, "machine": machine(), "platform": platform.platform(),
            "python": platform.python_version(), "cores": os.cpu_count(), "versions": versions,
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def result_path(bench: str, folder: Path | None = None) -> Path:
    folder = folder or ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.now(UTC):%Y-%m-%d}-{commit()[0]}-{machine()}-{bench}"
    path, n = folder / f"{stem}.json", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}.json", n + 1
    return path
