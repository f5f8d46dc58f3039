"""`python -m pipelines local|execute`: stage the inputs, run the executor, print what came out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipelines import ROOT
from pipelines.compile import staging
from pipelines.compile.plan import Plan, check_uploads
from pipelines.compile.snapshot import data_snapshot
from pipelines.local.executor import Execution, Options, Outcome
from pipelines.local.expressions import ExpressionError
from pipelines.local.store import open_store
from pipelines.spec.errors import fail
from pipelines.spec.parameters import parse_assignments, refuse_bad_values


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
    put = 0
    for uri, source in staging.objects(plan):
        if not options.store.exists(uri):
            options.store.put_bytes(uri, staging.content(source))
            put += 1
    return put


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
    try:
        execution = Execution(definition, options, name, retry_of=retry_of)
    except ExpressionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "retrying execution" if retry_of else "execution"
    print(f"{verb} {execution.execution_id}: {len(execution.steps)} steps, store {options.store.describe()}")
    try:
        outcome = execution.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: {RETRY_HINT.format(id=execution.execution_id)}", file=sys.stderr)
        return 130
    summarise(outcome, options)
    return 0 if outcome.status == "Succeeded" else 1


RETRY_HINT = ("finished steps and training checkpoints are kept; continue with `--retry {id}` "
              "(make local exp=… retry={id})")


def summarise(outcome: Outcome, options: Options) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"{outcome.execution_id}: {outcome.status}")
    for column in ("step", "status", "seconds", "note"):
        table.add_column(column)
    for name, result in outcome.steps.items():
        note = result.get("reason", "")
        table.add_row(name, result["status"], f"{result.get('seconds', 0):.1f}", str(note)[:90])
    console.print(table)
    prepare = outcome.steps.get("Prepare", {})
    if prepare.get("status") in ("Succeeded", "Cached"):
        _prepare_summary(console, prepare["properties"], options)
    evaluate = outcome.steps.get("Evaluate", {})
    if evaluate.get("status") in ("Succeeded", "Cached"):
        _leaderboard(console, evaluate["properties"], options)
    transform = outcome.steps.get("Transform", {})
    if transform.get("status") in ("Succeeded", "Cached") and hasattr(options.store, "root"):
        console.print(f"batch transform: {options.store.path(transform['properties']['TransformOutput']['S3OutputPath'])}")
    _cloud_estimate(console, outcome)
    if outcome.failure:
        console.print(f"[red]failed:[/red] {outcome.failure}")
        console.print(RETRY_HINT.format(id=outcome.execution_id))
    console.print(f"logs and state: {outcome.folder}")


def _cloud_estimate(console, outcome: Outcome) -> None:
    """What the step-seconds of this run would cost on the instances the definition names: an estimate, since
    this machine's speed is not theirs (a GPU instance would usually take less time)."""
    from pipelines.compile.cost import prices

    table, total, unpriced = next(iter(prices()["regions"].values())), 0.0, set()
    for result in outcome.steps.values():
        instance = result.get("instance")
        if not instance or result.get("status") != "Succeeded":
            continue
        if instance["type"] not in table:
            unpriced.add(instance["type"])
            continue
        total += result["seconds"] / 3600 * instance["count"] * table[instance["type"]]
    note = f"; no price for {', '.join(sorted(unpriced))}" if unpriced else ""
    console.print(f"cloud estimate: the same step-seconds on the definition's instances ≈ ${total:,.2f} on-demand "
                  f"(prices of {prices()['date']}; this machine's speed, not theirs{note})")


def _output_folder(properties: dict, name: str, options: Options) -> Path | None:
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in properties["ProcessingOutputConfig"]["Outputs"]}
    return options.store.path(outputs[name]) if hasattr(options.store, "root") and name in outputs else None


def _prepare_summary(console, properties: dict, options: Options) -> None:
    """Rows per model and windows per document: what each long-document strategy costs, before training."""
    folder = _output_folder(properties, "prepared", options)
    if folder is None or not (folder / "prepare_results.json").is_file():
        return
    results = json.loads((folder / "prepare_results.json").read_text(encoding="utf-8"))
    console.print("\nprepared data (per model)")
    for name, m in results.get("models", {}).items():
        w = m["windows_per_document"]
        cap = f", at most {m['max_windows']} per document per epoch" if m["max_windows"] and w["max"] > 1 else ""
        console.print(f"  {name:<16} {m['documents']:,} documents → {sum(m['rows'].values()):,} rows; windows per "
                      f"document median {w['median']:g}, p95 {w['p95']:g}, max {w['max']}; "
                      f"{m['training_rows_per_epoch']:,} training rows per epoch{cap}")


def _leaderboard(console, properties: dict, options: Options) -> None:
    folder = _output_folder(properties, "evaluation", options)
    if folder is None or not (folder / "evaluation.json").is_file():
        return
    evaluation = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))
    console.print("\nleaderboard (test set)")
    for rank, row in enumerate(evaluation["leaderboard"], start=1):
        m = row["metrics"]
        console.print(f"  {rank}. {row['model']:<16} accuracy {m['test_accuracy']:.4f}  macro F1 {m['test_macro_f1']:.4f}")
    console.print(f"report: {folder / 'report.md'}")
