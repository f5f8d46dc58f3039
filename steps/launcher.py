"""The image ENTRYPOINT: unpack the code bundle, then start a step program.

    python -m steps.launcher train                # a Training or Tuning job (SageMaker passes "train")
    python -m steps.launcher prepare --seed 1 ... # a Processing job: the program and its arguments
    python -m steps.launcher serve                # an endpoint or a batch transform (SageMaker passes "serve")

Training starts ``accelerate launch`` over every GPU of every host listed in SageMaker's resource
config (the same way for Training and Tuning jobs), then exports the best model on the main host and
copies the code that trained it into the model artifact (``code/``): serving runs that same code, the
experiment's encode_data included, since a hosting container receives no code channel.
Standard library only (it runs before the code bundle is unpacked), except on a GPU host, where torch
counts the GPUs: a job there that finds none fails at once, naming the driver and CUDA runtime.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import traceback
from pathlib import Path

from steps import contract

PROGRAMS = ("reconcile", "prepare", "train", "export", "evaluate", "serve")
MASTER_PORT = "29500"


def unpack_code(source_dir: Path) -> Path:
    """Unpack the one *.tar.gz in ``source_dir`` into the code dir; return the code dir.

    The folder is emptied, never removed: a process started in it (a WORKDIR pointed there) would be left
    in a deleted directory, where ``os.getcwd()`` raises and transformers fails to import."""
    bundles = sorted(source_dir.glob("*.tar.gz")) if source_dir.is_dir() else []
    target = contract.local(contract.CODE_DIR)
    if not bundles:
        # Run by hand from a checkout: the code is already importable.
        return Path(__file__).resolve().parent.parent
    target.mkdir(parents=True, exist_ok=True)
    for child in target.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    with tarfile.open(bundles[0]) as tar:
        tar.extractall(target, filter="data")
    return target


def program_env(code_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    experiment = code_dir / "experiment"
    if experiment.is_dir():
        env.setdefault("SMPIPE_EXPERIMENT_DIR", str(experiment))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


DRIVER_FILE = "/proc/driver/nvidia/version"
# The image's torch is a CUDA 12.9 build (containers/requirements-jobs.txt); CUDA 12.x minor-version
# compatibility runs it on any driver from 525.60.13 on (pipelines/spec/gpu_runtime.py holds the table).
MIN_DRIVER = (525, 60)
GPU_PROGRAMS = ("train", "evaluate", "serve")


def is_gpu_instance(instance_type: str) -> bool:
    """ml.g* and ml.p* are SageMaker's NVIDIA families (a test compares with the spec's instance table)."""
    parts = instance_type.split(".")
    return instance_type == "local_gpu" or (len(parts) == 3 and parts[1][:1] in ("g", "p"))


def nvidia_driver(path: str = DRIVER_FILE) -> str | None:
    """The loaded NVIDIA kernel module's version, read from /proc (no nvidia-smi in a slim image)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return found.group(1) if found else "unknown"


def torch_gpus() -> tuple[int, str, str]:
    """(GPUs torch can use, torch version, its CUDA runtime)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpus, torch.__version__, torch.version.cuda or "none (a CPU build)"


def gpus_expected(instance_type: str, driver: str | None) -> bool:
    return is_gpu_instance(instance_type) or (driver is not None and os.environ.get("CUDA_VISIBLE_DEVICES") != "")


def gpu_problem(instance_type: str, driver: str | None, gpus: int, torch_version: str, cuda: str) -> str:
    """Why a job on a GPU host would compute on the CPU; empty when it will use its GPUs."""
    if gpus > 0:
        return ""
    where = instance_type or "this host"
    if driver is None:
        return (f"{where} is a GPU instance but no NVIDIA driver is loaded ({DRIVER_FILE} is missing); torch "
                f"{torch_version}, CUDA runtime {cuda}. Refusing to train or serve on the CPU")
    need = ".".join(map(str, MIN_DRIVER))
    old = driver != "unknown" and tuple(int(x) for x in driver.split(".")[:2]) < MIN_DRIVER
    why = f"the driver is older than {need}, the oldest that runs CUDA {cuda}" if old else "torch sees no GPU"
    return (f"{where}: NVIDIA driver {driver}, torch {torch_version} with CUDA runtime {cuda}: {why}. "
            "Refusing to run on the CPU: pick an AMI version or instance type whose driver is at least "
            f"{need} (make validate lists them)")


def check_gpus(program: str) -> int:
    """GPUs this job will use; raises GpuMissing where a GPU host's GPUs are unusable (never a silent CPU run)."""
    driver = nvidia_driver()
    instance = contract.instance_type()
    if program not in GPU_PROGRAMS or not gpus_expected(instance, driver):
        return 0
    gpus, version, cuda = torch_gpus()
    problem = gpu_problem(instance, driver, gpus, version, cuda)
    if problem:
        raise GpuMissing(problem)
    return gpus


class GpuMissing(Exception):
    pass


def main_address(host: str) -> str:
    """The address of a host's name: SageMaker resolves algo-N itself; the local executor maps them."""
    return json.loads(os.environ.get("SMPIPE_HOST_ADDRESSES", "{}")).get(host, host)


def accelerate_command(module: str, gpus: int) -> list[str]:
    """accelerate launch across all GPUs of all hosts as one process group; one plain process on a
    single CPU host. Several CPU hosts (or SMPIPE_PROCESSES_PER_HOST) form one gloo group."""
    cfg = contract.resource_config()
    hosts = sorted(cfg["hosts"])
    rank = hosts.index(cfg["current_host"])
    per_host = max(int(os.environ.get("SMPIPE_PROCESSES_PER_HOST", 0)) or gpus, 1)
    if per_host * len(hosts) == 1:
        return [sys.executable, "-m", module]
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(per_host * len(hosts)),
            "--num_machines", str(len(hosts)), "--machine_rank", str(rank), "--main_process_ip",
            main_address(hosts[0]), "--main_process_port", os.environ.get("SMPIPE_MASTER_PORT", MASTER_PORT),
            "--dynamo_backend", "no", "--multi_gpu", "-m", module]


def package_code(code_dir: Path, model_dir: Path) -> None:
    """steps/ and the experiment folder into the model artifact, for the serving program."""
    target = model_dir / "code"
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(code_dir / "steps", target / "steps", ignore=ignore)
    experiment = code_dir / "experiment"
    experiment = experiment if experiment.is_dir() else Path(os.environ.get("SMPIPE_EXPERIMENT_DIR", "/nonexistent"))
    if experiment.is_dir():
        shutil.copytree(experiment, target / "experiment", ignore=ignore)


def serving_code() -> Path:
    """The code packaged with the model; by hand from a checkout, the checkout itself."""
    packaged = contract.local(contract.TRAIN_MODEL_DIR) / "code"
    return packaged if (packaged / "steps").is_dir() else Path(__file__).resolve().parent.parent


def is_main_host() -> bool:
    cfg = contract.resource_config()
    return cfg["current_host"] == sorted(cfg["hosts"])[0]


def run(cmd: list[str], env: dict[str, str]) -> int:
    print("launcher: " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env, check=False).returncode


def write_failure(message: str, program: str) -> None:
    """Where SageMaker reads a failed job's reason: training jobs /opt/ml/output/failure, processing jobs
    /opt/ml/output/message."""
    path = contract.local(contract.TRAIN_FAILURE_FILE if program == "train" else contract.PROC_FAILURE_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message[-1024:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    program = argv[0] if argv else "train"
    if program not in PROGRAMS:
        print(f"launcher: unknown program {program!r}; one of {', '.join(PROGRAMS)}", file=sys.stderr)
        return 2
    try:
        gpus = check_gpus(program)
        if program == "train":
            code_dir = unpack_code(contract.channel_dir(contract.CHANNEL_CODE))
            env = program_env(code_dir)
            rc = run(accelerate_command("steps.train", gpus), env)
            if rc == 0 and is_main_host():
                rc = run([sys.executable, "-m", "steps.export"], env)
                if rc == 0:
                    package_code(code_dir, contract.model_dir())
        elif program == "serve":  # the server replaces the launcher: SageMaker's SIGTERM reaches it
            cmd = [sys.executable, "-m", "steps.serve", *argv[1:]]
            print("launcher: " + " ".join(cmd), flush=True)
            os.execve(sys.executable, cmd, program_env(serving_code()))
        else:
            code_dir = unpack_code(contract.local(contract.PROC_CODE))
            rc = run([sys.executable, "-m", f"steps.{program}", *argv[1:]], program_env(code_dir))
    except GpuMissing as exc:
        print(f"launcher: error: {exc}", file=sys.stderr, flush=True)
        write_failure(str(exc), program)
        return 3
    except Exception:  # noqa: BLE001 - the job must leave a failure reason for SageMaker
        write_failure(traceback.format_exc(), program)
        raise
    if rc != 0:
        write_failure(f"steps.{program} exited with status {rc}", program)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
