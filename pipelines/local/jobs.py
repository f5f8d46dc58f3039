"""Run one Processing or Training job on this machine, the way SageMaker runs it in a container.

A sandbox holds the /opt/ml layout; inputs are copied in from the store, the image's launcher runs
with the local interpreter (``$SMPIPE_OPT_ML`` maps /opt/ml into the sandbox), outputs are copied
out, and a training job's model directory becomes ``<output>/<job name>/output/model.tar.gz``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import threading
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.local.store import LocalStore
from steps import contract

TAIL_LINES = 25
# How often a running training job's checkpoints are copied to the store (SMPIPE_CHECKPOINT_SYNC_S to change).
CHECKPOINT_SYNC_S = float(os.environ.get("SMPIPE_CHECKPOINT_SYNC_S", "5"))


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
    # SageMaker names every job uniquely (a retried step is a new job); the container sees it as TRAINING_JOB_NAME.
    job_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def opt_ml(self) -> Path:
        return self.sandbox / "opt" / "ml"

    def local(self, contract_path: str) -> Path:
        return self.opt_ml / contract_path[len(contract.OPT_ML) + 1:]

    def fresh_sandbox(self) -> None:
        """Every job starts in an empty container (a retried step is a new job: nothing of the last attempt)."""
        shutil.rmtree(self.sandbox, ignore_errors=True)
        self.opt_ml.mkdir(parents=True)


def launch(job: Job, argv: list[str], environment: dict) -> str:
    """Run the launcher; return the whole log text, raise JobFailed with its tail on failure."""
    env = {**os.environ, **{k: str(v) for k, v in environment.items()}, contract.OPT_ML_ENV: str(job.opt_ml),
           "PYTHONPATH": str(job.code_root), "PYTHONUNBUFFERED": "1"}
    env.pop("SMPIPE_EXPERIMENT_DIR", None)
    job.log.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with job.log.open("w", encoding="utf-8", buffering=1) as log:  # line-buffered: a crash keeps its log
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
    """What SageMaker would show as FailureReason: the training or the processing job's file."""
    for name in (contract.TRAIN_FAILURE_FILE, contract.PROC_FAILURE_FILE):
        path = job.local(name)
        if path.is_file() and path.read_text(encoding="utf-8").strip():
            return path.read_text(encoding="utf-8").strip().splitlines()[-1]
    return ""


def fetch(job: Job, uri: str, contract_path: str, what: str) -> None:
    if job.store.download(uri, job.local(contract_path)) == 0:
        raise JobFailed(f"{job.name}: input {what} has no objects at {uri}")


def run_processing(job: Job, args: dict) -> dict:
    job.fresh_sandbox()
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


def prepare_training(job: Job, definition: dict, hyperparameters: dict, checkpoints: str | None) -> None:
    job.fresh_sandbox()
    config = job.local(contract.TRAIN_CONFIG)
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for channel in definition.get("InputDataConfig", []):
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        fetch(job, uri, f"{contract.TRAIN_INPUT}/data/{channel['ChannelName']}", f"channel {channel['ChannelName']}")
    for folder in (contract.TRAIN_MODEL_DIR, contract.TRAIN_OUTPUT_DATA, contract.TRAIN_CHECKPOINTS):
        job.local(folder).mkdir(parents=True, exist_ok=True)
    if checkpoints and job.store.exists(checkpoints):
        job.store.download(checkpoints, job.local(contract.TRAIN_CHECKPOINTS))


def parse_metrics(log: str, definitions: list[dict]) -> dict[str, float]:
    """Last value of each metric, parsed with the compiled regexes (as SageMaker does from CloudWatch)."""
    found = {}
    for item in definitions:
        values = re.findall(item["Regex"], log)
        if values:
            last = values[-1]
            found[item["Name"]] = float(last[0] if isinstance(last, tuple) else last)
    return found


def checkpoint_uri(definition: dict, job: Job, trial: bool) -> str | None:
    """Where this job's checkpoints live: the definition's URI, plus the trial's job name for a tuning trial."""
    checkpoint = definition.get("CheckpointConfig")
    if not checkpoint:
        return None
    return checkpoint["S3Uri"].rstrip("/") + (f"/{job.name}" if trial else "")


class CheckpointSync:
    """As SageMaker does during training: checkpoints reach the store while the job runs, and once more at
    its end whatever the outcome, so a crash or Ctrl-C keeps every finished epoch.

    progress.json files are read first and written last, so the store never names an epoch folder it does
    not hold; folders still being written (``*.tmp``) are skipped, unchanged files are not copied again.
    """

    def __init__(self, local: Path, uri: str, store: LocalStore):
        self.local, self.uri, self.store = local, uri, store
        self.copied: dict[Path, tuple[int, int]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="checkpoint-sync", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(CHECKPOINT_SYNC_S):
            self.sync()

    def sync(self) -> None:
        progress = {p.relative_to(self.local): p.read_bytes() for p in self.local.rglob("progress.json")}
        try:
            for path in sorted(self.local.rglob("*")):
                rel = path.relative_to(self.local)
                if not path.is_file() or rel in progress or any(part.endswith(".tmp") for part in rel.parts):
                    continue
                stat = path.stat()
                if self.copied.get(rel) != (stat.st_size, stat.st_mtime_ns):
                    self.store.upload(path, f"{self.uri}/{rel.as_posix()}")
                    self.copied[rel] = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            return  # a folder was replaced while copying; the next round copies the new one
        for rel, data in progress.items():
            self.store.put_bytes(f"{self.uri}/{rel.as_posix()}", data)

    def __enter__(self) -> CheckpointSync:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.sync()


def run_training(job: Job, definition: dict, hyperparameters: dict, trial: bool = False) -> dict:
    prepare_training(job, definition, hyperparameters, checkpoint_uri(definition, job, trial))
    environment = {**definition.get("Environment", {}), "TRAINING_JOB_NAME": f"{job.name}-{job.job_id}"}
    uri = checkpoint_uri(definition, job, trial)
    with CheckpointSync(job.local(contract.TRAIN_CHECKPOINTS), uri, job.store) if uri else nullcontext():
        log = launch(job, ["train"], environment)
    metrics = parse_metrics(log, definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", []))
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
