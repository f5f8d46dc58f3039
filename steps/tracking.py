"""wandb on the main process only; offline unless a key is given (directly or by Secrets Manager id).

Tracking never fails a job: a wandb problem is printed and training goes on.
"""

from __future__ import annotations

import os
import sys


def _fetch_key(secret_id: str) -> str | None:
    import boto3

    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    return value.strip() or None


def start(config: dict, job_type: str, directory: str):
    mode = os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled":
        return None
    try:
        secret_id = os.environ.get("SMPIPE_WANDB_SECRET_ID")
        if secret_id and not os.environ.get("WANDB_API_KEY"):
            key = _fetch_key(secret_id)
            if key:
                os.environ["WANDB_API_KEY"] = key  # read by wandb from the environment; never printed
        if mode == "online" and not os.environ.get("WANDB_API_KEY"):
            mode = "offline"
        import wandb

        return wandb.init(project=os.environ.get("WANDB_PROJECT", "smpipe"), entity=os.environ.get("WANDB_ENTITY"),
                          group=os.environ.get("SMPIPE_EXPERIMENT", "manual"), job_type=job_type, config=config,
                          mode=mode, dir=directory, reinit="finish_previous")
    except Exception as exc:  # noqa: BLE001 - tracking must not fail the job
        print(f"warning: wandb disabled for this job ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def log(run, data: dict, step: int | None = None) -> None:
    if run is not None:
        try:
            run.log(data, step=step)
        except Exception as exc:  # noqa: BLE001
            print(f"warning: wandb log failed ({exc})", file=sys.stderr)


def finish(run) -> None:
    if run is not None:
        try:
            run.finish()
        except Exception as exc:  # noqa: BLE001
            print(f"warning: wandb finish failed ({exc})", file=sys.stderr)
