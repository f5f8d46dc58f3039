"""What a local execution measured, as a file: ``<execution folder>/results.json``.

Scores per model, the comparisons, each step's status and seconds, the prepared data's counts, the batch
transform checked against expected labels where its input lines carry them (``{"text", "expected"}``), and
where the figures come from (commit, machine, package versions). `make bench-cpu` reads it; the README's
figures of the example come from such a file under bench/results/.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pipelines.local.executor import Options, Outcome

PACKAGES = ("torch", "transformers", "accelerate", "datasets", "tokenizers", "sagemaker")
FINISHED = ("Succeeded", "Cached")


def write(outcome: Outcome, options: Options, code_root: Path) -> Path:
    results = {"execution_id": outcome.execution_id, "status": outcome.status, **origin(code_root),
               "steps": {name: {"status": r["status"], "seconds": round(r.get("seconds", 0.0), 3)}
                         for name, r in outcome.steps.items()}}
    for result in outcome.steps.values():
        if result.get("status") in FINISHED and result.get("properties"):
            results.update(_from_outputs(result["properties"], options))
    path = outcome.folder / "results.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def origin(code_root: Path) -> dict:
    def git(*args: str) -> str:
        try:
            run = subprocess.run(["git", *args], cwd=code_root, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return run.stdout.strip()

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"commit": git("rev-parse", "--short=8", "HEAD") or "unknown",
            "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
            "machine": {"platform": platform.platform(), "processor": platform.machine(), "cores": os.cpu_count()},
            "python": platform.python_version(), "versions": versions,
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def _outputs(properties: dict, options: Options) -> dict[str, Path]:
    found = {o["OutputName"]: options.store.local_path(o["S3Output"]["S3Uri"])
             for o in properties.get("ProcessingOutputConfig", {}).get("Outputs", [])}
    return {name: path for name, path in found.items() if path is not None}


def _from_outputs(properties: dict, options: Options) -> dict:
    out: dict = {}
    folders = _outputs(properties, options)
    if "prepared" in folders and (folders["prepared"] / "prepare_results.json").is_file():
        out["prepare"] = json.loads((folders["prepared"] / "prepare_results.json").read_text(encoding="utf-8"))
    if "evaluation" in folders and (folders["evaluation"] / "evaluation.json").is_file():
        evaluation = json.loads((folders["evaluation"] / "evaluation.json").read_text(encoding="utf-8"))
        out["scores"] = {row["model"]: row["metrics"] for row in evaluation["leaderboard"]}
        out["best"] = evaluation["best"]["model"]
        out["comparisons"] = evaluation.get("comparisons", [])
    transform = properties.get("TransformOutput", {}).get("S3OutputPath")
    source = properties.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
    if transform and source and options.store.local_path(transform):
        out["transform"] = transform_check(options.store.local_path(source), options.store.local_path(transform))
    return out


def transform_check(inputs: Path, outputs: Path) -> dict:
    """Lines scored, and where input lines name the label they should get (``expected``), how many got it."""
    scored, expected, intended = 0, 0, 0
    for source in sorted(p for p in inputs.rglob("*") if p.is_file()):
        answers = outputs / f"{source.relative_to(inputs).as_posix()}.out"
        if not answers.is_file():
            continue
        lines = source.read_text(encoding="utf-8").splitlines()
        predictions = answers.read_text(encoding="utf-8").splitlines()
        scored += len(predictions)
        for line, prediction in zip(lines, predictions, strict=False):
            want = _expected(line)
            if want is not None:
                expected += 1
                intended += _label(prediction) == want
    return {"lines": scored, "with_expected_label": expected, "as_expected": intended}


def _expected(line: str) -> str | None:
    item = _json(line)
    return item.get("expected") if isinstance(item, dict) else None


def _label(prediction: str) -> str | None:
    item = _json(prediction)
    return item.get("label") if isinstance(item, dict) else prediction.split(",")[0]  # a CSV answer: label,score


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
