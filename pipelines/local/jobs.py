"""Run a job on this machine the way SageMaker runs it in a container, and a Processing job with it.

A sandbox holds the container's files (/opt/ml under it); inputs are copied in from the store, the image is
started through pipelines/local/container.py (its entrypoint, working directory and environment, as SageMaker
starts it for the kind of job), outputs are copied out. Training jobs: pipelines/local/training.py.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.local import container
from pipelines.store.base import Store
from steps import contract
from steps.core.progress import PREFIX as PROGRESS

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
    store: Store
    code_root: Path  # where steps/ lives for the launcher (the unpacked bundle takes over)
    echo: bool = False
    image: str | None = None  # docker=1: run the job in this image instead of on the host
    # SageMaker names every job uniquely (a retried step is a new job); the container sees it as TRAINING_JOB_NAME.
    job_id: str = field(default_factory=lambda: secrets.token_hex(4))
    stand_ins: dict = field(default_factory=dict)  # this host's stand-ins for what a job reaches on AWS
    progress: Callable[[str, str], None] | None = None  # (job, line): the job's progress lines, for the terminal

    @property
    def opt_ml(self) -> Path:
        return self.sandbox / "opt" / "ml"

    def local(self, contract_path: str) -> Path:
        return self.opt_ml / contract_path[len(contract.OPT_ML) + 1:]

    def fresh_sandbox(self) -> None:
        """Every job starts in an empty container (a retried step is a new job: nothing of the last attempt)."""
        shutil.rmtree(self.sandbox, ignore_errors=True)
        self.opt_ml.mkdir(parents=True)


def launch(job: Job, start: container.Start, environment: dict, extra: dict | None = None) -> str:
    """Start the image's entrypoint as SageMaker would; return the whole log, raise JobFailed with its tail."""
    return launch_hosts([job], [start], environment, [extra or {}])[0]


def launch_hosts(jobs: list[Job], starts: list[container.Start], environment: dict, extras: list[dict]) -> list[str]:
    """One container per host, all at once (one process group when they train together); the job fails, and
    the other hosts are stopped, when any host fails."""
    procs = [_spawn(job, start, environment, extra) for job, start, extra in zip(jobs, starts, extras, strict=True)]
    tails = [deque(maxlen=TAIL_LINES) for _ in procs]
    readers = [threading.Thread(target=_stream, args=(job, proc, tail), daemon=True)
               for job, proc, tail in zip(jobs, procs, tails, strict=True)]
    for reader in readers:
        reader.start()
    try:
        codes = _wait_all(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for reader in readers:
            reader.join()
    for job, code, tail in zip(jobs, codes, tails, strict=True):
        if code != 0:
            reason = _failure_reason(job)
            raise JobFailed(f"{job.name} exited with status {code}{': ' + reason if reason else ''}", code,
                            "\n".join(tail))
    return [job.log.read_text(encoding="utf-8") for job in jobs]


def _spawn(job: Job, start: container.Start, environment: dict, extra: dict) -> subprocess.Popen:
    container.write_files(start, job.opt_ml)
    extra = {**job.stand_ins, **extra}
    cwd = container.workdir(job.sandbox)
    cwd.mkdir(parents=True, exist_ok=True)
    if job.image:
        cmd, env = container.docker_command(start, environment, job.opt_ml, job.image, extra), None
    else:
        cmd, env = container.command(start), container.environment(start, environment, job.opt_ml, job.code_root, extra)
    job.log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)


def _stream(job: Job, proc: subprocess.Popen, tail: deque) -> None:
    with job.log.open("w", encoding="utf-8", buffering=1) as log:  # line-buffered: a crash keeps its log
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
            if job.echo:
                print(f"  [{job.name}] {line}", end="", flush=True)
            elif job.progress and line.startswith(PROGRESS):
                job.progress(job.name, line[len(PROGRESS):].rstrip("\n"))


@dataclass
class TerminalProgress:
    """Each running job's progress lines on the terminal: the first at once, then at most one per job every
    ``every`` seconds, and a phase's closing line always; so a long step is never silent and parallel steps
    never flood the terminal. The job's log keeps every line."""

    say: Callable[[str], None]
    every: float = 15.0
    last: dict = field(default_factory=dict)

    def __call__(self, job: str, line: str) -> None:
        now = time.monotonic()
        if now - self.last.get(job, -self.every) < self.every and not line.endswith(" in all)"):
            return
        self.last[job] = now
        self.say(f"  … {job}: {line}")


def _wait_all(procs: list[subprocess.Popen]) -> list[int]:
    """Exit codes; a host that fails stops the others (its peers would wait for it until a timeout)."""
    while True:
        codes = [proc.poll() for proc in procs]
        if all(code is not None for code in codes):
            return codes
        if any(code not in (None, 0) for code in codes):
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            return [proc.wait() for proc in procs]
        if len(procs) == 1:
            return [procs[0].wait()]
        time.sleep(0.2)


def _failure_reason(job: Job) -> str:
    """What SageMaker would show as FailureReason: the training or the processing job's file."""
    for name in (contract.TRAIN_FAILURE_FILE, contract.PROC_FAILURE_FILE):
        path = job.local(name)
        if path.is_file() and path.read_text(encoding="utf-8").strip():
            return path.read_text(encoding="utf-8").strip().splitlines()[-1]
    return ""


def fetch(job: Job, uri: str, contract_path: str, what: str) -> None:
    try:
        copied = job.store.download(uri, job.local(contract_path))
    except ValueError as exc:  # not an s3:// URI: a parameter value the job cannot read
        raise JobFailed(f"{job.name}: input {what}: {exc}") from None
    if copied == 0:
        raise JobFailed(f"{job.name}: input {what} has no objects at {uri}")


def run_processing(job: Job, args: dict) -> dict:
    job.fresh_sandbox()
    for item in args.get("ProcessingInputs", []):
        s3 = item["S3Input"]
        fetch(job, s3["S3Uri"], s3["LocalPath"], item["InputName"])
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in outputs:
        job.local(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    start = container.processing(job.name, args, container.host_instance_type(container.has_nvidia_driver()))
    launch(job, start, args.get("Environment", {}))
    for item in outputs:
        job.store.upload(job.local(item["S3Output"]["LocalPath"]), item["S3Output"]["S3Uri"])
    return {"ProcessingJobName": job.name, "ProcessingJobStatus": "Completed",
            "ProcessingOutputConfig": {"Outputs": outputs}, "AppSpecification": args["AppSpecification"]}
