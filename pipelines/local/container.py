"""Start the image on this machine the way SageMaker starts its container, for each kind of job.

A job's sandbox stands for the container's file system: /opt/ml/... is ``<sandbox>/opt/ml/...`` (programs map
it through ``$SMPIPE_OPT_ML``) and the job starts in ``<sandbox>/opt/smpipe``, the image's WORKDIR. The command
is the image's ENTRYPOINT with this interpreter for ``python3``, followed by what SageMaker passes for the kind
of job. The environment is the image's ENV, what SageMaker itself sets for that kind of job (both declared in
steps/contract.py, which a test compares with the Dockerfile) and the job's own Environment. Of this shell only
what a process needs on this host passes (PATH, HOME, locale, TMPDIR, CUDA_VISIBLE_DEVICES) and the SMPIPE_*
settings: a variable SageMaker would not set cannot make a local run pass.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from steps import contract

HOST_VARIABLES = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "CUDA_VISIBLE_DEVICES")
# The host's stand-ins for what a container has by itself (its /opt/ml, its hosts' names): set here only.
STAND_INS = ("SMPIPE_OPT_ML", "SMPIPE_HOST_ADDRESSES", "SMPIPE_MASTER_PORT", "SMPIPE_EXPERIMENT_DIR")


@dataclass
class Start:
    """One container start: the arguments after the ENTRYPOINT, the variables SageMaker sets for this kind of
    job beside the job's Environment, and the config files it writes first (contract path → content)."""

    kind: str
    argv: list[str]
    sagemaker_env: dict[str, str] = field(default_factory=dict)
    files: dict[str, object] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = contract.IMAGE_ENTRYPOINT


def command(start: Start) -> list[str]:
    head, *rest = start.entrypoint
    return [sys.executable if head in ("python3", "python") else head, *rest, *start.argv]


def workdir(sandbox: Path) -> Path:
    return sandbox / contract.IMAGE_WORKDIR.lstrip("/")


def environment(start: Start, job_env: dict, opt_ml: Path, code_root: Path, extra: dict | None = None) -> dict:
    """The container's environment on this host (``extra``: this host's stand-ins, e.g. its hosts' addresses)."""
    env = {k: os.environ[k] for k in HOST_VARIABLES if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("SMPIPE_") and k not in STAND_INS})
    env.update({**contract.IMAGE_ENV, "PYTHONPATH": str(code_root)})  # the image's launcher lives in code_root here
    env.update({k: str(v) for k, v in job_env.items()})
    env.update(start.sagemaker_env)
    env.update({contract.OPT_ML_ENV: str(opt_ml), **(extra or {})})
    return env


def docker_command(start: Start, job_env: dict, opt_ml: Path, image: str, extra: dict | None = None) -> list[str]:
    """`make local docker=1`: the same start inside the built image itself, /opt/ml mounted from the sandbox.
    The image brings its own ENV, WORKDIR and launcher; host networking keeps 127.0.0.1 hosts and ports."""
    env = {**{k: str(v) for k, v in job_env.items()}, **start.sagemaker_env, **(extra or {})}
    cmd = ["docker", "run", "--rm", "--network", "host", "-v", f"{opt_ml.resolve()}:{contract.OPT_ML}"]
    if has_nvidia_driver():
        cmd += ["--gpus", "all"]
    for key, value in sorted(env.items()):
        cmd += ["-e", f"{key}={value}"]
    if start.entrypoint != contract.IMAGE_ENTRYPOINT:
        cmd += ["--entrypoint", start.entrypoint[0], image, *start.entrypoint[1:], *start.argv]
        return cmd
    return [*cmd, image, *start.argv]


def write_files(start: Start, opt_ml: Path) -> None:
    for path, content in start.files.items():
        target = opt_ml / path[len(contract.OPT_ML) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")


def host_instance_type(gpus_here: bool) -> str:
    """What a local resource config names as the instance: this host, as SageMaker's local mode calls it."""
    return "local_gpu" if gpus_here else "local"


def has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia/version").is_file() and os.environ.get("CUDA_VISIBLE_DEVICES") != ""


def resource_config(host: str, hosts: list[str], instance_type: str) -> dict:
    group = "homogeneousCluster"
    return {"current_host": host, "current_instance_type": instance_type, "current_group_name": group,
            "hosts": hosts, "network_interface_name": "eth0",
            "instance_groups": [{"instance_group_name": group, "instance_type": instance_type, "hosts": hosts}]}


def training(job_name: str, hyperparameters: dict, definition: dict, host: str, hosts: list[str],
             instance_type: str) -> Start:
    channels = {c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File"), "RecordWrapperType": "None",
                                   "S3DistributionType": c["DataSource"]["S3DataSource"].get(
                                       "S3DataDistributionType", "FullyReplicated")}
                for c in definition.get("InputDataConfig", [])}
    config = contract.TRAIN_CONFIG
    return Start("training", list(contract.JOB_STARTS["training"]["argv"]),
                 {"TRAINING_JOB_NAME": job_name,
                  "TRAINING_JOB_ARN": f"arn:aws:sagemaker:local:000000000000:training-job/{job_name}"},
                 {f"{config}/hyperparameters.json": {k: str(v) for k, v in hyperparameters.items()},
                  f"{config}/resourceconfig.json": resource_config(host, hosts, instance_type),
                  f"{config}/inputdataconfig.json": channels})


def processing(job_name: str, args: dict, instance_type: str) -> Start:
    app = args["AppSpecification"]
    request = {"ProcessingJobName": job_name, **{k: v for k, v in args.items() if k != "Tags"}}
    request["ProcessingResources"] = {"ClusterConfig": {
        **args.get("ProcessingResources", {}).get("ClusterConfig", {}), "InstanceType": instance_type}}
    entrypoint = tuple(app.get("ContainerEntrypoint") or contract.IMAGE_ENTRYPOINT)
    return Start("processing", list(app.get("ContainerArguments", [])), {},
                 {f"{contract.PROC_CONFIG}/processingjobconfig.json": request,
                  f"{contract.PROC_CONFIG}/resourceconfig.json": {"current_host": "algo-1", "hosts": ["algo-1"]}},
                 entrypoint)


def serving(transform: dict | None = None) -> Start:
    """An endpoint's container, or a batch transform's (which also learns its payload and concurrency)."""
    if transform is None:
        return Start("hosting", list(contract.JOB_STARTS["hosting"]["argv"]))
    strategy = "MULTI_RECORD" if transform.get("BatchStrategy") == "MultiRecord" else "SINGLE_RECORD"
    return Start("transform", list(contract.JOB_STARTS["transform"]["argv"]), {
        "SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(transform.get("MaxPayloadInMB", 6)),
        "SAGEMAKER_BATCH_STRATEGY": strategy,
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(transform.get("MaxConcurrentTransforms") or 1)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
