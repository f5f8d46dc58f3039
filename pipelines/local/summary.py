"""The run summary `make local` prints: steps, prepared data, leaderboard, outputs, a cloud estimate.

Printing only: it reads an outcome and the store, never runs anything. Steps are found by what they wrote
(a ``prepared`` or ``evaluation`` output, a transform output), not by their names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipelines.local.executor import Options, Outcome
from steps import contract

RETRY_HINT = ("finished steps and training checkpoints are kept; continue with `--retry {id}` "
              "(make local exp=… retry={id})")


def summarise(outcome: Outcome, options: Options) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)  # a path is never cut at the terminal width
    table = Table(title=f"{outcome.execution_id}: {outcome.status}")
    for column in ("step", "status", "seconds", "note"):
        table.add_column(column)
    for name, result in outcome.steps.items():
        note = result.get("reason", "")
        table.add_row(name, result["status"], f"{result.get('seconds', 0):.1f}", str(note)[:90])
    console.print(table)
    for result in _finished(outcome):
        _prepare_summary(console, result["properties"], options)
    for result in _finished(outcome):
        _leaderboard(console, result["properties"], options)
    for result in _finished(outcome):
        output = result["properties"].get("TransformOutput", {}).get("S3OutputPath")
        if output and options.store.local_path(output):
            console.print(f"batch transform: {options.store.local_path(output)}")
    _mlflow(console, outcome, options)
    _wandb(console, outcome)
    _warnings(console, outcome)
    _cloud_estimate(console, outcome)
    if outcome.failure:
        console.print(f"[red]failed:[/red] {outcome.failure}")
        console.print(RETRY_HINT.format(id=outcome.execution_id))
    _disk(console, outcome, options)
    console.print(f"logs and state: {outcome.folder}")


def _disk(console, outcome: Outcome, options: Options) -> None:
    """What this execution holds on disk (its folder and its outputs in the store), and all of them."""
    from pipelines.local.disk import executions, human, size

    every = executions(options.runs, options.store)
    this = next((e for e in every if e.id == outcome.execution_id), None)
    if this is None:
        return
    total = sum(e.bytes() for e in every)
    console.print(f"disk: this execution {human(this.bytes())} (logs and job sandboxes {human(size(this.folder))}, "
                  f"outputs in the store {human(size(*this.outputs))}); {len(every)} local execution(s) "
                  f"{human(total)}; `make clean-runs keep=N` keeps the N newest of each experiment", markup=False)


WARNING = re.compile(r"(?:^|\] )warning: (.+)$")
MLFLOW_RUN = re.compile(r"tracking: MLflow run \S+ \((\S+)\) under execution run (\S+)")


def _mlflow(console, outcome: Outcome, options: Options) -> None:
    """Where this execution's MLflow tree is, when its steps logged one."""
    for name in outcome.steps:
        log = outcome.folder / "logs" / f"{name}.log"
        found = MLFLOW_RUN.search(log.read_text(encoding="utf-8", errors="replace")) if log.is_file() else None
        if found:
            console.print(f"MLflow: run {found.group(2)} (this execution, a child run per step) in "
                          f"{(options.runs / 'mlflow.db').resolve()}; `make mlflow exp=...` opens it", markup=False)
            return


# where each kind of job keeps its offline wandb run (steps/core/tracking.py): output data, beside an output
WANDB_RUNS = tuple(f"jobs/*{folder}/wandb/offline-run-*" for folder in (
    contract.TRAIN_OUTPUT_DATA, f"{contract.OUT_EVALUATION.rsplit('/', 1)[0]}/*/{contract.TRACKING_DIR}"))


def _wandb(console, outcome: Outcome) -> None:
    """The offline wandb runs this execution's jobs wrote, and the command that sends them."""
    found = [p for pattern in WANDB_RUNS for p in outcome.folder.glob(pattern)]
    if found:
        where = " ".join(f"{outcome.folder.resolve()}/{pattern}" for pattern in WANDB_RUNS)
        console.print(f"wandb: {len(found)} offline run(s) in group {outcome.execution_id}; `wandb sync {where}` "
                      "sends them", markup=False)


def warnings(outcome: Outcome) -> list[tuple[str, str]]:
    """(step, message) of every ``warning:`` line a job printed (a tracking fallback, a skipped check), once
    each: a job that goes on after a problem says so in its log, and the summary repeats it."""
    found: dict[tuple[str, str], None] = {}
    for name in outcome.steps:
        log = outcome.folder / "logs" / f"{name}.log"
        if log.is_file():
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                match = WARNING.search(line.strip())
                if match:
                    found[(name, match.group(1))] = None
    return list(found)


def _warnings(console, outcome: Outcome) -> None:
    items = warnings(outcome)
    if items:
        console.print("\n[yellow]warnings[/yellow] (from the jobs' logs)")
        for step, message in items:
            console.print(f"  {step}: {message}", markup=False)


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


def _finished(outcome: Outcome) -> list[dict]:
    return [r for r in outcome.steps.values() if r.get("status") in ("Succeeded", "Cached") and r.get("properties")]


def _output_folder(properties: dict, name: str, options: Options) -> Path | None:
    """The local folder of a processing step's output ``name`` (prepared, evaluation), whichever step wrote it."""
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"]
               for o in properties.get("ProcessingOutputConfig", {}).get("Outputs", [])}
    return options.store.local_path(outputs[name]) if name in outputs else None


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
    for flag in evaluation.get("flags", []):  # what the averages above hide
        console.print(f"  [yellow]look:[/yellow] {flag}", highlight=False)
    console.print(f"report: {folder / 'report.md'}")
