"""`make jupyter` and `make terminal`: the environment a job runs in, on this machine, at the latest run.

The project's venv plus the experiment's own requirements.txt (what its image adds), a Jupyter kernel named
after the experiment, the experiment folder as working directory, and the latest local run's folders in
environment variables: the container contract's (SM_CHANNEL_TRAIN, SM_MODEL_DIR, …) so a step's program runs
by hand on the run's own data, and SMPIPE_* ones for notebooks. With docker=1 the same inside the job image.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

from pipelines import ROOT
from pipelines.compile.plan import Plan
from pipelines.spec.errors import fail
from pipelines.store.local import LocalStore


def latest_run(plan: Plan, runs: Path, store: LocalStore) -> dict[str, str]:
    """Environment variables for the newest execution of this experiment that has a state file."""
    states = sorted(runs.glob("local-*/state.json"), reverse=True)
    env = {"SMPIPE_EXPERIMENT": plan.spec.name, "SMPIPE_EXPERIMENT_DIR": str(_folder(plan)),
           "SMPIPE_LOCAL_STORE": str(store.root), "PYTHONPATH": str(ROOT)}
    for state_path in states:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        prepare = state["steps"].get(plan.graph.of_kind("prepare")[0].name, {})
        if prepare.get("status") not in ("Succeeded", "Cached"):
            continue
        execution, folder = state["execution_id"], store.path(f"{plan.base_uri}/runs/{state_path.parent.name}")
        env.update(SMPIPE_RUN=execution, SMPIPE_RUN_DIR=str(folder), SMPIPE_RUN_LOGS=str(state_path.parent / "logs"))
        outputs = {o["OutputName"]: store.path(o["S3Output"]["S3Uri"])
                   for step in state["steps"].values() if step.get("properties")
                   for o in step["properties"].get("ProcessingOutputConfig", {}).get("Outputs", [])}
        for name, key in (("prepared", "SMPIPE_PREPARED"), ("evaluation", "SMPIPE_EVALUATION"),
                          ("best-model", "SMPIPE_BEST_MODEL")):
            if name in outputs:
                env[key] = str(outputs[name])
        return env
    return env


def _folder(plan: Plan) -> Path:
    return plan.experiment_dir or ROOT


def contract_env(plan: Plan, env: dict[str, str], scratch: Path) -> dict[str, str]:
    """The SageMaker training contract pointed at the run: the first model's prepared data and pretrained
    weights as channels, fresh model/output/checkpoint folders under ``scratch``."""
    out = dict(env)
    model = plan.models[0]
    if "SMPIPE_PREPARED" in env:
        out["SM_CHANNEL_TRAIN"] = str(Path(env["SMPIPE_PREPARED"]) / model.spec.name)
    if model.pretrained_uri and "SMPIPE_LOCAL_STORE" in env:
        out["SM_CHANNEL_PRETRAINED"] = str(Path(env["SMPIPE_LOCAL_STORE"]) / model.pretrained_uri[len("s3://"):])
    for key, name in (("SM_MODEL_DIR", "model"), ("SM_OUTPUT_DATA_DIR", "output"), ("SMPIPE_CHECKPOINT_DIR", "checkpoints")):
        (scratch / name).mkdir(parents=True, exist_ok=True)
        out[key] = str(scratch / name)
    return out


def install_requirements(plan: Plan) -> None:
    requirements = _folder(plan) / "requirements.txt"
    if requirements.is_file():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)


def install_kernel(plan: Plan, env: dict[str, str]) -> str:
    """A kernel named after the experiment, with the run's variables in its environment."""
    name = plan.spec.name.lower()
    cmd = [sys.executable, "-m", "ipykernel", "install", "--prefix", sys.prefix, "--name", name,
           "--display-name", f"{plan.spec.name} (smpipe)"]
    for key, value in sorted(env.items()):
        cmd += ["--env", key, value]
    subprocess.run(cmd, check=True, capture_output=True)
    return name


def jupyter_command(plan: Plan, port: int, token: str) -> list[str]:
    return [sys.executable, "-m", "jupyterlab", "--ip", "127.0.0.1", "--port", str(port), "--no-browser",
            f"--ServerApp.root_dir={_folder(plan)}", f"--IdentityProvider.token={token}",
            "--ServerApp.port_retries=0"] + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])


def become(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> NoReturn:
    """Replace this process with ``command`` (exec): Ctrl-C, SIGTERM or a closed terminal reach JupyterLab, the
    shell or docker itself, never a parent that dies and leaves its child running."""
    sys.stdout.flush()
    sys.stderr.flush()
    if cwd is not None:
        os.chdir(cwd)
    program = shutil.which(command[0], path=(env or os.environ).get("PATH")) or command[0]
    os.execve(program, command, {**os.environ, **(env or {})})


def docker_command(plan: Plan, env: dict[str, str], inner: list[str]) -> list[str]:
    if shutil.which("docker") is None:
        raise fail("<command line>", "docker=1 needs Docker, which is not installed here",
                   hint="drop docker=1 to use the local environment, or install Docker")
    mounts = {str(ROOT): "/opt/smpipe-src"}
    mounts.update({v: v for k, v in env.items() if k.startswith(("SMPIPE_", "SM_")) and Path(v).exists()})
    cmd = ["docker", "run", "--rm", "-it", "-p", "127.0.0.1:8888:8888", "-w", "/opt/smpipe-src"]
    for source, target in sorted(mounts.items()):
        cmd += ["-v", f"{source}:{target}"]
    for key, value in sorted({**env, "PYTHONPATH": "/opt/smpipe-src"}.items()):
        cmd += ["-e", f"{key}={value}"]
    return cmd + ["--entrypoint", inner[0], plan.spec.aws.image_uri, *inner[1:]]


def new_token() -> str:
    return os.environ.get("SMPIPE_JUPYTER_TOKEN") or secrets.token_hex(24)
