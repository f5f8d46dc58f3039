"""wandb and MLflow on the main process only. wandb is offline unless a key is given (directly or by Secrets
Manager id); MLflow logs a child run of the execution's tree where `tracking.mlflow` is set
(steps/core/mlflow_tree.py).

Tracking never fails a job: a tracker's problem is printed and training goes on.
"""

from __future__ import annotations

import os
import sys

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

    def __init__(self, wandb_run, mlflow_run):
        self.wandb, self.mlflow = wandb_run, mlflow_run


def start(config: dict, job_type: str, directory: str, step: str | None = None) -> Runs:
    from steps.core.mlflow_tree import StepRun, configured

    mlflow_run = StepRun(step or job_type) if configured() else None
    if mlflow_run is not None:
        mlflow_run.params(config)
    return Runs(_start_wandb(config, job_type, directory), mlflow_run)


def _start_wandb(config: dict, job_type: str, directory: str):
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
        return wandb.init(project=os.environ.get("WANDB_PROJECT", "smpipe"), entity=os.environ.get("WANDB_ENTITY"),
                          group=execution or experiment, job_type=job_type,
                          tags=[experiment, *([execution] if execution else [])],
                          config={**config, "smpipe_experiment": experiment, "smpipe_execution_id": execution},
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
        try:
            runs.wandb.log(data, step=step)
        except Exception as exc:  # noqa: BLE001
            print(f"warning: wandb log failed ({exc})", file=sys.stderr)


def finish(runs: Runs | None, artifacts: list | None = None) -> None:
    if runs is None:
        return
    if runs.mlflow is not None:
        runs.mlflow.artifacts(artifacts or [])
        runs.mlflow.end()
    if runs.wandb is not None:
        try:
            runs.wandb.finish()
        except Exception as exc:  # noqa: BLE001
            print(f"warning: wandb finish failed ({exc})", file=sys.stderr)
