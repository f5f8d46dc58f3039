"""Shared fixtures: tiny specs, a tiny local model, and an offline, quiet environment."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests keep their data and tiny models in temporary folders outside the project; the rule that refuses
# such folders (pipelines/spec/rules_paths.py) is tested with this unset.
os.environ.setdefault("SMPIPE_DATA_ROOTS", str(Path(tempfile.gettempdir()).resolve()))
for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(key, None)

MINIMAL = """\
name: EXP-0042-minimal
data: {source: s3://bucket-a/raw/}
models:
  - {name: bert, source: s3://bucket-a/models/bert/}
register: {group: minimal-group}
"""


@pytest.fixture
def write_spec(tmp_path):
    """Write an experiment.yaml (and optional user_defined_funcs.py) into a temp project."""
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "steps").mkdir(exist_ok=True)
    (tmp_path / "templates" / "text-classification.yaml").write_text(
        (ROOT / "templates" / "text-classification.yaml").read_text())

    def write(text: str = MINIMAL, udf: str | None = None, name: str = "EXP-0042-minimal") -> Path:
        folder = tmp_path / "experiments" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "experiment.yaml").write_text(text, encoding="utf-8")
        if udf is not None:
            (folder / "user_defined_funcs.py").write_text(udf, encoding="utf-8")
        return folder / "experiment.yaml"

    return write


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tiny import make_model, make_texts

    folder = tmp_path_factory.mktemp("tiny-model") / "tiny"
    return make_model(folder, [r["text"] for r in make_texts(60)])
