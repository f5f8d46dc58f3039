"""The JSON Schema of experiment.yaml, committed so editors complete and check specs."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines import ROOT
from pipelines.spec.experiment import Experiment

SCHEMA_PATH = ROOT / "schema" / "experiment.schema.json"


def schema_text() -> str:
    schema = Experiment.model_json_schema()
    schema["properties"]["base"] = {"type": "string", "description": "template to inherit defaults from"}
    schema["title"] = "smpipe experiment"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    return path
