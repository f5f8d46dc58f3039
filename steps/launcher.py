"""The image ENTRYPOINT: unpack the code bundle, then start a step program.

    python -m steps.launcher train                # a Training or Tuning job (SageMaker passes "train")
    python -m steps.launcher prepare --seed 1 ... # a Processing job: the program and its arguments
    python -m steps.launcher serve                # an endpoint or a batch transform (SageMaker passes "serve")

Training starts ``accelerate launch`` over every GPU of every host listed in SageMaker's resource
config (the same way for Training and Tuning jobs), then exports the best model on the main host and
copies the code that trained it into the model artifact (``code/``): serving runs that same code, the
experiment's encode_data included, since a hosting container receives no code channel.
Standard library only: it runs before the code bundle is unpacked.
"""

from __future__ import annotations

import os
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
    """Unpack the one *.tar.gz in ``source_dir`` into the code dir; return the code dir."""
    bundles = sorted(source_dir.glob("*.tar.gz")) if source_dir.is_dir() else []
    target = contract.local(contract.CODE_DIR)
    if not bundles:
        # Run by hand from a checkout: the code is already importable.
        return Path(__file__).resolve().parent.parent
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
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


def gpu_count() -> int:
    if "SM_NUM_GPUS" in os.environ:
        return int(os.environ["SM_NUM_GPUS"])
    if shutil.which("nvidia-smi") is None:
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def accelerate_command(module: str) -> list[str]:
    """accelerate launch across all GPUs of all hosts; one plain process on a CPU-only host."""
    cfg = contract.resource_config()
    hosts = sorted(cfg["hosts"])
    rank = hosts.index(cfg["current_host"])
    per_host = int(os.environ.get("SMPIPE_PROCESSES_PER_HOST", 0)) or gpu_count()
    if per_host <= 1 and len(hosts) == 1:
        return [sys.executable, "-m", module]
    per_host = max(per_host, 1)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(per_host * len(hosts)),
           "--num_machines", str(len(hosts)), "--machine_rank", str(rank), "--main_process_ip", hosts[0],
           "--main_process_port", MASTER_PORT, "--dynamo_backend", "no"]
    cmd += ["--multi_gpu"] if gpu_count() or per_host > 1 else ["--cpu"]
    return cmd + ["-m", module]


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
        if program == "train":
            code_dir = unpack_code(contract.channel_dir(contract.CHANNEL_CODE))
            env = program_env(code_dir)
            rc = run(accelerate_command("steps.train"), env)
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
    except Exception:  # noqa: BLE001 - the job must leave a failure reason for SageMaker
        write_failure(traceback.format_exc(), program)
        raise
    if rc != 0:
        write_failure(f"steps.{program} exited with status {rc}", program)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
