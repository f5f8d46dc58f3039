"""`python -m pipelines local|execute`: stage the inputs, run the executor, print what came out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipelines import ROOT
from pipelines.compile import staging
from pipelines.compile.plan import Plan, check_uploads
from pipelines.compile.snapshot import data_snapshot
from pipelines.local import results
from pipelines.local.executor import Execution, Options
from pipelines.local.summary import RETRY_HINT, summarise
from pipelines.spec.errors import fail
from pipelines.spec.parameters import parse_assignments, refuse_bad_values
from pipelines.store import open_store


def _options(args) -> Options:
    runs = Path(args.runs).resolve()
    return Options(store=open_store(Path(args.store).resolve()), runs=runs, registry=runs / "registry",
                   code_root=ROOT, parameters=parse_assignments(args.param), from_step=args.from_step,
                   use_cache=not args.no_cache, parallel=args.parallel, say=_say)


def docker_image(image: str) -> str:
    """docker=1: the job image, built here (make build-push builds it), and a daemon to run it."""
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        raise fail("<command line>", "docker=1 needs Docker, which is not installed here",
                   hint="drop docker=1: the same container contract runs on this host")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        raise fail("<command line>", "docker=1: the Docker daemon is not reachable", hint="start Docker, or drop docker=1")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        raise fail("<command line>", f"docker=1: the image {image} is not built here",
                   hint="build it with make build-push exp=… (or docker build -f containers/Dockerfile .)")
    return image


def _say(line: str) -> None:
    print(line, flush=True)


def stage(plan: Plan, options: Options) -> int:
    """What `pipeline-upsert` uploads to S3, put into the local store the same way (compile/staging.py):
    the objects that are missing; returns how many were put."""
    check_uploads(plan)
    return sum(staging.put_missing(plan, options.store).values())


def run_experiment(plan: Plan, args) -> int:
    from pipelines.compile.definition import definition

    options = _options(args)
    if getattr(args, "docker", False):
        options.image = docker_image(plan.spec.aws.image_uri)
    if getattr(args, "retry", None):
        return _retry(args.retry, plan.pipeline_name, options)
    refuse_bad_values(plan.parameters, options.parameters, plan.spec.aws.kms_key)
    options.parameters, seen = data_snapshot(plan, options.parameters, options.store.listing)
    if seen:
        print(seen)
    text = definition(plan)
    stage(plan, options)
    return _execute(json.loads(text), plan.pipeline_name, options)


def _retry(which: str, name: str, options: Options) -> int:
    """Re-run an earlier execution's failed or unfinished steps with its own definition and parameters."""
    folders = sorted(p.parent for p in options.runs.glob("local-*/state.json"))
    folder = (folders[-1] if folders else None) if which == "latest" else options.runs / which
    if folder is None or not (folder / "definition.json").is_file():
        raise fail(str(options.runs), f"no execution {which!r} to retry" + (f" (found: {', '.join(f.name for f in folders[-5:])})"
                                                                                if folders else " (no executions yet)"),
                   hint="give an execution id from .local-runs/, or `latest`")
    definition = json.loads((folder / "definition.json").read_text(encoding="utf-8"))
    return _execute(definition, name, options, retry_of=folder.name)


def run_definition(path: Path, args) -> int:
    if not path.is_file():
        raise fail(str(path), "definition file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise fail(str(path), f"not JSON: {exc.msg}", line=exc.lineno, column=exc.colno) from None
    options = _options(args)
    if getattr(args, "retry", None):
        return _retry(args.retry, path.stem, options)
    return _execute(data, path.stem, options)


def _execute(definition: dict, name: str, options: Options, retry_of: str | None = None) -> int:
    execution = Execution(definition, options, name, retry_of=retry_of)  # ExpressionError: exit 2 (cli.py)
    verb = "retrying execution" if retry_of else "execution"
    print(f"{verb} {execution.execution_id}: {len(execution.steps)} steps, store {options.store.describe()}")
    try:
        outcome = execution.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: {RETRY_HINT.format(id=execution.execution_id)}", file=sys.stderr)
        return 130
    summarise(outcome, options)
    print(f"results: {results.write(outcome, options, options.code_root)}")
    return 0 if outcome.status == "Succeeded" else 1


