"""Run one Processing or Training job on this machine, the way SageMaker runs it in a container.

A sandbox holds the /opt/ml layout; inputs are copied in from the store, the image's launcher runs
with the local interpreter (``$SMPIPE_OPT_ML`` maps /opt/ml into the sandbox), outputs are copied
out, and a training job's model directory becomes ``<output>/<job name>/output/model.tar.gz``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from pipelines.local.store import LocalStore
from steps import contract

TAIL_LINES = 25


class JobFailed(Exception):
    def __init__(self, message: str, exit_code: int | None = None, tail: str = ""):
        super().__init__(message)
        self.exit_code, self.tail = exit_code, tail


@dataclass
class Job:
    name: str
    sandbox: Path  # holds opt/ml
    log: Path
    store: LocalStore
    code_root: Path  # where steps/ lives for the launcher (the unpacked bundle takes over)
    echo: bool = False

    @property
    def opt_ml(self) -> Path:
        return self.sandbox / "opt" / "ml"

    def local(self, contract_path: str) -> Path:
        return self.opt_ml / contract_path[len(contract.OPT_ML) + 1:]


def launch(job: Job, argv: list[str], environment: dict) -> str:
    """Run the launcher; return the whole log text, raise JobFailed with its tail on failure."""
    env = {**os.environ, **{k: str(v) for k, v in environment.items()}, contract.OPT_ML_ENV: str(job.opt_ml),
           "PYTHONPATH": str(job.code_root), "PYTHONUNBUFFERED": "1"}
    env.pop("SMPIPE_EXPERIMENT_DIR", None)
    job.log.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with job.log.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "steps.launcher", *argv], cwd=job.sandbox, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
            if job.echo:
                print(f"  [{job.name}] {line}", end="", flush=True)
        code = proc.wait()
    if code != 0:
        reason = _failure_reason(job)
        raise JobFailed(f"{job.name} exited with status {code}{': ' + reason if reason else ''}", code, "\n".join(tail))
    return job.log.read_text(encoding="utf-8")


def _failure_reason(job: Job) -> str:
    path = job.local(contract.TRAIN_FAILURE_FILE)
    return path.read_text(encoding="utf-8").strip().splitlines()[-1] if path.is_file() else ""


def fetch(job: Job, uri: str, contract_path: str, what: str) -> None:
    if job.store.download(uri, job.local(contract_path)) == 0:
        raise JobFailed(f"{job.name}: input {what} has no objects at {uri}")


def run_processing(job: Job, args: dict) -> dict:
    for item in args.get("ProcessingInputs", []):
        s3 = item["S3Input"]
        fetch(job, s3["S3Uri"], s3["LocalPath"], item["InputName"])
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in outputs:
        job.local(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    app = args["AppSpecification"]
    argv = list(app.get("ContainerEntrypoint", [])[2:] if app.get("ContainerEntrypoint") else [])
    argv += list(app.get("ContainerArguments", []))
    launch(job, argv, args.get("Environment", {}))
    for item in outputs:
        job.store.upload(job.local(item["S3Output"]["LocalPath"]), item["S3Output"]["S3Uri"])
    return {"ProcessingJobName": job.name, "ProcessingJobStatus": "Completed",
            "ProcessingOutputConfig": {"Outputs": outputs}, "AppSpecification": app}


def prepare_training(job: Job, definition: dict, hyperparameters: dict) -> None:
    config = job.local(contract.TRAIN_CONFIG)
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for channel in definition.get("InputDataConfig", []):
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        fetch(job, uri, f"{contract.TRAIN_INPUT}/data/{channel['ChannelName']}", f"channel {channel['ChannelName']}")
    for folder in (contract.TRAIN_MODEL_DIR, contract.TRAIN_OUTPUT_DATA, contract.TRAIN_CHECKPOINTS):
        job.local(folder).mkdir(parents=True, exist_ok=True)
    checkpoint = definition.get("CheckpointConfig")
    if checkpoint and job.store.exists(checkpoint["S3Uri"]):
        job.store.download(checkpoint["S3Uri"], job.local(contract.TRAIN_CHECKPOINTS))


def parse_metrics(log: str, definitions: list[dict]) -> dict[str, float]:
    """Last value of each metric, parsed with the compiled regexes (as SageMaker does from CloudWatch)."""
    found = {}
    for item in definitions:
        values = re.findall(item["Regex"], log)
        if values:
            last = values[-1]
            found[item["Name"]] = float(last[0] if isinstance(last, tuple) else last)
    return found


def run_training(job: Job, definition: dict, hyperparameters: dict) -> dict:
    prepare_training(job, definition, hyperparameters)
    log = launch(job, ["train"], definition.get("Environment", {}))
    metrics = parse_metrics(log, definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", []))
    checkpoint = definition.get("CheckpointConfig")
    if checkpoint:
        job.store.upload(job.local(contract.TRAIN_CHECKPOINTS), checkpoint["S3Uri"])
    output = definition["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{job.name}/output"
    for source, name in ((contract.TRAIN_MODEL_DIR, "model.tar.gz"), (contract.TRAIN_OUTPUT_DATA, "output.tar.gz")):
        archive = job.sandbox / name
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(job.local(source).iterdir()):
                tar.add(path, arcname=path.name)
        job.store.upload(archive, f"{output}/{name}")
        archive.unlink()
    return {"TrainingJobName": job.name, "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"{output}/model.tar.gz"},
            "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in sorted(metrics.items())],
            "HyperParameters": hyperparameters, "metrics": metrics}
