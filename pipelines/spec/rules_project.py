"""Rules across the experiments of one project: each has its own pipeline name and endpoint name.

`make pipeline-upsert` of an experiment named like another would replace the other's pipeline, schedules and
S3 prefix, and `make deploy` of a shared endpoint name would replace the other's model. SageMaker compares
endpoint names without regard to case.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.spec import fs
from pipelines.spec.experiment import Experiment


def _others(spec_path: Path, root: Path) -> list[tuple[str, dict]]:
    """(relative path, raw mapping) of every other experiment.yaml of the project that parses."""
    out = []
    for path in sorted((root / "experiments").glob("*/experiment.yaml")):
        if fs.resolved(path) == fs.resolved(spec_path):
            continue
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # its own validate says what is wrong with it
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            out.append((path.relative_to(root).as_posix(), raw))
    return out


def _endpoint(raw: dict) -> str:
    deploy = raw.get("deploy") if isinstance(raw.get("deploy"), dict) else {}
    return str(deploy.get("endpoint_name") or raw["name"])


def check(spec: Experiment, spec_path: Path, root: Path, add) -> None:
    if not fs.resolved(spec_path).is_relative_to(fs.resolved(root)):
        return  # a spec outside the project (a scratch copy) has no neighbours to collide with
    endpoint = spec.deploy.endpoint_name or spec.name
    for where, raw in _others(spec_path, root):
        if raw["name"] == spec.name:
            add(("name",), f"{where} is named {spec.name} too: one would replace the other's pipeline, schedules "
                "and S3 prefix", "give this experiment its own name (the folder name is the convention)")
        elif _endpoint(raw).lower() == endpoint.lower():
            loc = ("deploy", "endpoint_name") if spec.deploy.endpoint_name else ("name",)
            add(loc, f"{where} deploys to the endpoint {_endpoint(raw)} too: one deploy would replace the other's "
                "model", "set deploy.endpoint_name to a name of this experiment's own")
