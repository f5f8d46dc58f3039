"""A Model step and a Transform step on this machine, the way SageMaker batch transform runs them.

The model artifact is unpacked into a sandbox's /opt/ml/model and the image's serving program is started
(`launcher serve`, on a free port of 127.0.0.1). Each input object is split by line, records are sent in
requests of at most MaxPayloadInMB (MultiRecord) or one per request (SingleRecord), MaxConcurrentTransforms
at a time, and the answers are assembled by line into ``<output path>/<input name>.out``: one output line
per input line, or the step fails saying which file and how many lines came back.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipelines.local import container
from pipelines.local.jobs import Job, JobFailed
from steps import contract

START_TIMEOUT_S = 180


def create_model(models_dir: Path, execution_id: str, step_name: str, args: dict) -> dict:
    """CreateModel: remembered in the execution folder for the transform that names it."""
    name = f"{step_name}-{execution_id}"[:63]
    models_dir.mkdir(parents=True, exist_ok=True)
    (models_dir / f"{name}.json").write_text(json.dumps(args, indent=2, default=str), encoding="utf-8")
    return {"ModelName": name, "PrimaryContainer": args["PrimaryContainer"]}


def _call(port: int, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 600) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


class ServingContainer:
    """The image started with `serve` on a sandbox's /opt/ml, as batch transform starts it, until the block ends."""

    def __init__(self, job: Job, args: dict, model_env: dict):
        self.job, self.port = job, container.free_port()
        start, job_env = container.serving(args), {**model_env, **args.get("Environment", {})}
        extra = {"SAGEMAKER_BIND_TO_PORT": str(self.port), "SMPIPE_SERVE_HOST": "127.0.0.1"}
        if job.image:
            cmd, env = container.docker_command(start, job_env, job.opt_ml, job.image, extra), None
        else:
            cmd, env = container.command(start), container.environment(start, job_env, job.opt_ml, job.code_root, extra)
        cwd = container.workdir(job.sandbox)
        cwd.mkdir(parents=True, exist_ok=True)
        job.log.parent.mkdir(parents=True, exist_ok=True)
        self.log = job.log.open("w", encoding="utf-8", buffering=1)
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def __enter__(self) -> ServingContainer:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise JobFailed(f"{self.job.name}: the serving program exited with status {self.proc.returncode} "
                                "before answering /ping", self.proc.returncode, self.job.log.read_text()[-3000:])
            try:
                _call(self.port, "/ping", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        raise JobFailed(f"{self.job.name}: the serving program did not answer /ping in {START_TIMEOUT_S} s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def requests_for(records: list[bytes], strategy: str, max_payload_mb: int) -> list[list[bytes]]:
    """Records grouped as batch transform sends them: one per request, or as many as fit the payload."""
    if strategy != "MultiRecord":
        return [[r] for r in records]
    limit, out, current, size = max_payload_mb * 2**20, [], [], 0
    for record in records:
        if current and size + len(record) + 1 > limit:
            out.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record) + 1
    return out + ([current] if current else [])


def transform_file(server: ServingContainer, path: Path, args: dict) -> bytes:
    records = path.read_bytes().rstrip(b"\n").split(b"\n") if path.stat().st_size else []
    headers = {"Content-Type": args["TransformInput"].get("ContentType", "application/jsonlines"),
               "Accept": args["TransformOutput"].get("Accept", "application/jsonlines")}
    batches = requests_for(records, args.get("BatchStrategy", "SingleRecord"), int(args.get("MaxPayloadInMB", 6)))

    def send(batch: list[bytes]) -> list[bytes]:
        try:
            answer = _call(server.port, "/invocations", b"\n".join(batch) + b"\n", headers)
        except urllib.error.HTTPError as exc:
            raise JobFailed(f"{path.name}: the model answered {exc.code}: "
                            f"{exc.read()[:500].decode(errors='replace')}") from None
        lines = answer.rstrip(b"\n").split(b"\n")
        if len(lines) != len(batch):
            raise JobFailed(f"{path.name}: {len(lines)} output lines for {len(batch)} input lines")
        return lines

    with ThreadPoolExecutor(max_workers=int(args.get("MaxConcurrentTransforms") or 1)) as pool:
        answers = [line for lines in pool.map(send, batches) for line in lines]
    return b"\n".join(answers) + (b"\n" if answers else b"")


def run_transform(job: Job, args: dict, models_dir: Path) -> dict:
    job.fresh_sandbox()
    model = json.loads((models_dir / f"{args['ModelName']}.json").read_text(encoding="utf-8"))
    archive = job.sandbox / "model.tar.gz"
    if job.store.download(model["PrimaryContainer"]["ModelDataUrl"], job.sandbox) == 0:
        raise JobFailed(f"{job.name}: no model artifact at {model['PrimaryContainer']['ModelDataUrl']}")
    with tarfile.open(archive) as tar:
        tar.extractall(job.local(contract.TRAIN_MODEL_DIR), filter="data")
    source = args["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    inputs = job.sandbox / "input"
    if job.store.download(source, inputs) == 0:
        raise JobFailed(f"{job.name}: no objects to transform at {source}")
    output = args["TransformOutput"]["S3OutputPath"].rstrip("/")
    with ServingContainer(job, args, model["PrimaryContainer"].get("Environment", {})) as server:
        for path in sorted(p for p in inputs.rglob("*") if p.is_file()):
            name = f"{path.relative_to(inputs).as_posix()}.out"
            result = job.sandbox / "output" / name
            result.parent.mkdir(parents=True, exist_ok=True)
            result.write_bytes(transform_file(server, path, args))
            job.store.upload(result, f"{output}/{name}")
    return {"TransformJobName": job.name, "TransformJobStatus": "Completed", "ModelName": args["ModelName"],
            "TransformInput": args["TransformInput"], "TransformOutput": {"S3OutputPath": output}}
