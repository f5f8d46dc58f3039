"""A Training job on this machine: one sandbox per host, the image started on each as SageMaker starts it.

An ``InstanceCount: 2`` job runs as two hosts (algo-1, algo-2) on 127.0.0.1, each with its own /opt/ml and
resource config; they form one process group (gloo on the CPU, this machine's GPUs split between them), and
the model comes from algo-1, as on SageMaker. Checkpoints reach the store while the job runs.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import threading
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from pipelines.local import container
from pipelines.local.jobs import Job, fetch, launch_hosts
from pipelines.store.base import Store
from steps import contract

# How often a running training job's checkpoints are copied to the store (SMPIPE_CHECKPOINT_SYNC_S to change).
CHECKPOINT_SYNC_S = float(os.environ.get("SMPIPE_CHECKPOINT_SYNC_S", "5"))


def prepare_training(job: Job, definition: dict, checkpoints: str | None) -> None:
    job.fresh_sandbox()
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

    def __init__(self, local: Path, uri: str, store: Store):
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


def host_jobs(job: Job, count: int) -> list[Job]:
    """algo-1 is the job itself; every further host gets its own sandbox and log, as its own instance would."""
    return [job] + [replace(job, sandbox=job.sandbox.with_name(f"{job.sandbox.name}.algo-{i}"),
                            log=job.log.with_name(f"{job.name}.algo-{i}.log")) for i in range(2, count + 1)]


def host_gpus(count: int) -> list[dict]:
    """Per host, this machine's GPUs split evenly (CUDA_VISIBLE_DEVICES); all on the CPU when too few."""
    if count == 1:
        return [{}]
    gpus = 0
    if container.has_nvidia_driver():
        import torch

        gpus = torch.cuda.device_count()
    per = gpus // count
    return [{"CUDA_VISIBLE_DEVICES": ",".join(str(i * per + j) for j in range(per))} for i in range(count)]


def run_training(job: Job, definition: dict, hyperparameters: dict, trial: bool = False) -> dict:
    count = int(definition.get("ResourceConfig", {}).get("InstanceCount", 1))
    jobs, hosts, uri = host_jobs(job, count), [f"algo-{i}" for i in range(1, count + 1)], checkpoint_uri(definition, job, trial)
    for one in jobs:
        prepare_training(one, definition, uri)
    extras = host_gpus(count)
    if count > 1:
        shared = {"SMPIPE_HOST_ADDRESSES": json.dumps(dict.fromkeys(hosts, "127.0.0.1")),
                  "SMPIPE_MASTER_PORT": str(container.free_port())}
        extras = [{**shared, **extra} for extra in extras]
    gpu_here = [container.has_nvidia_driver() and extra.get("CUDA_VISIBLE_DEVICES") != "" for extra in extras]
    name = f"{job.name}-{job.job_id}"
    starts = [container.training(name, hyperparameters, definition, host, hosts, container.host_instance_type(gpu))
              for host, gpu in zip(hosts, gpu_here, strict=True)]
    with CheckpointSync(job.local(contract.TRAIN_CHECKPOINTS), uri, job.store) if uri else nullcontext():
        log = launch_hosts(jobs, starts, definition.get("Environment", {}), extras)[0]
    metrics = parse_metrics(log, definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", []))
    output = definition["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{job.name}/output"
    for source, archive_name in ((contract.TRAIN_MODEL_DIR, "model.tar.gz"), (contract.TRAIN_OUTPUT_DATA, "output.tar.gz")):
        archive = job.sandbox / archive_name
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(job.local(source).iterdir()):
                tar.add(path, arcname=path.name)
        job.store.upload(archive, f"{output}/{archive_name}")
        archive.unlink()
    return {"TrainingJobName": job.name, "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"{output}/model.tar.gz"},
            "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in sorted(metrics.items())],
            "HyperParameters": hyperparameters, "metrics": metrics}
