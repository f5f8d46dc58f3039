"""wandb and MLflow for every step that runs our code (Prepare, each Train, Evaluate), on the main process only.

Both trees are one per execution: wandb groups a step's run by the execution id (and tags it), MLflow makes it a
child of the execution's run (steps/core/mlflow_tree.py). Each run carries the experiment, the execution id,
the step, the code digest and the digest of the data it read. wandb is offline unless a key is given (directly
or by Secrets Manager id); MLflow is on where `tracking.mlflow` is set.

Tracking never fails a job: a tracker's problem is printed and the step goes on.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from steps.core.execution import execution_id


def _fetch_key(secret_id: str) -> str | None:
    import boto3

    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    return value.strip() or None


def _key_available() -> bool:
    """The key from the environment or from Secrets Manager; a failed fetch means offline, never no tracking."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    secret_id = os.environ.get("SMPIPE_WANDB_SECRET_ID")
    if not secret_id:
        return False
    try:
        key = _fetch_key(secret_id)
    except Exception as exc:  # noqa: BLE001 - no network, no permission: log offline instead
        print(f"warning: could not read the wandb key from Secrets Manager ({type(exc).__name__}); "
              "logging offline (sync later with `wandb sync`)", file=sys.stderr)
        return False
    if key:
        os.environ["WANDB_API_KEY"] = key  # read by wandb from the environment; never printed
    return bool(key)


class Runs:
    """The job's run in each tracker that is on (either may be None)."""

    def __init__(self, wandb_run, mlflow_run, directory: str):
        self.wandb, self.mlflow, self.directory = wandb_run, mlflow_run, Path(directory)


def start(config: dict, job_type: str, directory: str, step: str | None = None, data_sha256: str = "") -> Runs:
    """The step's run in each tracker that is on; ``data_sha256``: the digest of the data the step read."""
    from steps.core.mlflow_tree import StepRun, configured

    mlflow_run = StepRun(step or job_type, data_sha256) if configured() else None
    if mlflow_run is not None:
        mlflow_run.params(config)
    return Runs(_start_wandb(config, job_type, directory, step or job_type, data_sha256), mlflow_run, directory)


def log_step(step: str, job_type: str, directory: Path, data_sha256: str, params: dict, metrics: dict,
             artifacts: list, tables: dict | None = None, execution_tags: dict | None = None) -> None:
    """A processing step's runs in one go: its parameters, its figures, its files, ``tables`` (name → rows
    of dicts, a wandb Table each; MLflow has them in the files) and ``execution_tags`` on MLflow's
    execution run."""
    runs = start(params, job_type, str(directory), step, data_sha256)
    if runs.mlflow is not None:
        runs.mlflow.metrics(metrics)
        runs.mlflow.tag_execution(execution_tags or {})
    if runs.wandb is not None:
        _wandb_call("log", lambda: runs.wandb.log({**metrics, **_tables(tables or {})}))
    finish(runs, artifacts)


def _tables(tables: dict) -> dict:
    import wandb

    out = {}
    for name, rows in tables.items():
        columns = sorted({k for row in rows for k in row})
        out[name] = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
    return out


def _wandb_call(what: str, action) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - tracking must not fail the job
        print(f"warning: wandb could not {what} ({type(exc).__name__}: {exc})", file=sys.stderr)


def _start_wandb(config: dict, job_type: str, directory: str, step: str, data_sha256: str):
    mode = os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled":
        return None
    if mode == "online" and not _key_available():
        mode = "offline"
    try:
        import wandb

        experiment = os.environ.get("SMPIPE_EXPERIMENT", "manual")
        execution = execution_id()  # steps/core/execution.py: without touching the step's cache key
        # one group per execution where it is known (wandb's tree), else per experiment
        identity = {"smpipe_experiment": experiment, "smpipe_execution_id": execution, "smpipe_step": step,
                    "smpipe_code_sha256": os.environ.get("SMPIPE_CODE_SHA256", ""), "smpipe_data_sha256": data_sha256}
        Path(directory).mkdir(parents=True, exist_ok=True)
        return wandb.init(project=os.environ.get("WANDB_PROJECT", "smpipe"), entity=os.environ.get("WANDB_ENTITY"),
                          group=execution or experiment, job_type=job_type, name=f"{step} {execution or experiment}",
                          tags=[experiment, *([execution] if execution else [])], config={**config, **identity},
                          mode=mode, dir=directory, reinit="finish_previous")
    except Exception as exc:  # noqa: BLE001 - tracking must not fail the job
        print(f"warning: wandb could not start for this job ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def log(runs: Runs | None, data: dict, step: int | None = None) -> None:
    if runs is None:
        return
    if runs.mlflow is not None:
        runs.mlflow.metrics(data, step)
    if runs.wandb is not None:
        _wandb_call("log", lambda: runs.wandb.log(data, step=step))


def finish(runs: Runs | None, artifacts: list | None = None) -> None:
    if runs is None:
        return
    files = [Path(p) for p in artifacts or [] if Path(p).is_file()]
    if runs.mlflow is not None:
        runs.mlflow.artifacts(files)
        runs.mlflow.end()
    if runs.wandb is not None:
        for path in files:  # wandb links them into the run; resolve_links makes the links copies
            _wandb_call(f"save {path.name}", lambda p=path: runs.wandb.save(str(p), base_path=str(p.parent),
                                                                          policy="now"))
        _wandb_call("finish", runs.wandb.finish)
        _wandb_call("resolve its links", lambda: resolve_links(runs.directory))


def resolve_links(directory: Path) -> None:
    """wandb links its latest run and its logs: a link out of the folder becomes a copy, one inside it goes,
    so what S3 or a tar receives is plain files, none pointing at a machine that is gone."""
    root = directory.resolve()
    for link in [p for p in directory.rglob("*") if p.is_symlink()]:
        target = link.resolve()
        link.unlink()
        if target.is_file() and not target.is_relative_to(root):
            shutil.copy2(target, link)
