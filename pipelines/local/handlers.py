"""One handler per step Type of a definition: what the local platform does for it.

The engine (executor.py) walks the DAG, resolves expressions, consults the cache and keeps the state; it
knows no step type. It looks a step's handler up here by the definition's ``Type`` and gives it the step's
resolved arguments; the handler returns the step's properties, as SageMaker's Describe* call would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.local import expressions as ex
from pipelines.local.jobs import Job, JobFailed, run_processing
from pipelines.local.notebook import is_notebook_job, run_notebook
from pipelines.local.training import run_training
from pipelines.local.transform import create_model, run_transform
from pipelines.local.tuning import tune


@dataclass
class StepContext:
    """What a handler may use of the execution that runs it."""

    execution_id: str
    folder: Path  # the execution's folder
    registry: Path  # the local model registry
    code_root: Path
    scope: ex.Scope
    lock: threading.Lock
    job: Callable[[str], Job]  # a job's sandbox, log and store, by job name
    say: Callable[[str], None]


@dataclass(frozen=True)
class Handler:
    run: Callable[[StepContext, str, dict], dict]  # (context, step name, arguments) → properties
    job: bool = False  # it starts a job: its result is cached by its arguments and billed by its instances
    resolves_arguments: bool = True  # False: it reads its arguments itself (a condition's branches stay unresolved)
    kept_on_retry: bool = True  # False: a retry runs it again (a condition decides the branches anew)


def _processing(ctx: StepContext, name: str, args: dict) -> dict:
    return run_processing(ctx.job(name), args)


def _training(ctx: StepContext, name: str, args: dict) -> dict:
    if is_notebook_job(args):
        return run_notebook(ctx.job(name), args, ctx.code_root)
    return run_training(ctx.job(name), args, args.get("HyperParameters", {}))


def _tuning(ctx: StepContext, name: str, args: dict) -> dict:
    def trial(job_name: str, hyperparameters: dict) -> dict:
        return run_training(ctx.job(job_name), args["TrainingJobDefinition"], hyperparameters, trial=True)

    return tune(name, args, trial, lambda line: ctx.say(f"  {line}"))


def _transform(ctx: StepContext, name: str, args: dict) -> dict:
    return run_transform(ctx.job(name), args, ctx.folder / "models")


def _model(ctx: StepContext, name: str, args: dict) -> dict:
    return create_model(ctx.folder / "models", ctx.execution_id, name, args)


def _condition(ctx: StepContext, name: str, args: dict) -> dict:
    """``Outcome`` says which branch runs; the engine skips the other."""
    outcome = all(ex.condition(c, ctx.scope) for c in args["Conditions"])
    ctx.say(f"  {name}: condition is {str(outcome).lower()}")
    return {"Outcome": outcome}


def _fail(ctx: StepContext, name: str, args: dict) -> dict:
    raise JobFailed(f"Fail step {name}: {args.get('ErrorMessage', '')}")


def _register(ctx: StepContext, name: str, args: dict) -> dict:
    """A model package version in the local registry (one JSON file per version, numbered like SageMaker's)."""
    group = args["ModelPackageGroupName"]
    folder = ctx.registry / group
    folder.mkdir(parents=True, exist_ok=True)
    with ctx.lock:
        version = 1 + max((int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()), default=0)
        entry = {"ModelPackageGroupName": group, "ModelPackageVersion": version,
                 "ModelPackageArn": f"arn:local:model-package/{group}/{version}",
                 "ModelApprovalStatus": args.get("ModelApprovalStatus", "PendingManualApproval"),
                 "ModelDataUrl": args["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
                 "InferenceSpecification": args["InferenceSpecification"],
                 "CustomerMetadataProperties": args.get("CustomerMetadataProperties", {}),
                 "PipelineExecutionId": ctx.execution_id, "CreationTime": datetime.now(UTC).isoformat()}
        (folder / f"{version}.json").write_text(json.dumps(entry, indent=2), encoding="utf-8")
    ctx.say(f"  registered {group} version {version} ({entry['ModelApprovalStatus']})")
    return {"ModelPackageArn": entry["ModelPackageArn"], "RegistryFile": str(folder / f"{version}.json")}


HANDLERS = {
    "Processing": Handler(_processing, job=True),
    "Training": Handler(_training, job=True),
    "Tuning": Handler(_tuning, job=True),
    "Transform": Handler(_transform, job=True),
    "Model": Handler(_model),
    "RegisterModel": Handler(_register),
    "Condition": Handler(_condition, resolves_arguments=False, kept_on_retry=False),
    "Fail": Handler(_fail),
}


def handler_for(step_type: str) -> Handler:
    try:
        return HANDLERS[step_type]
    except KeyError:
        raise JobFailed(f"step type {step_type!r} is not supported by the local executor "
                        f"(supported: {', '.join(sorted(HANDLERS))})") from None
