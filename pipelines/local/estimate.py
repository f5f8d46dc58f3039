"""Before training, where the data is local: each model's real rows, its steps per epoch and a time on this
machine (`make plan`, `make validate`).

The rows are counted by the pipeline's own Reconcile and Prepare run here by the local executor (so a user
function or a long-document strategy counts exactly as it will), through the step cache: `make local`
reuses them. The time is measured on this machine with a few steps of the model at its batch size and
max_length, remembered in ``<runs>/estimates.json``.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

from pipelines.compile.plan import Plan
from pipelines.spec.experiment import Hyperparameters
from steps.core.progress import _duration

PROBE_STEPS = 3


def data_is_local(plan: Plan) -> bool:
    return plan.parameters["DataSource"].default in plan.uploads


def prepared(plan: Plan, store_root: Path, runs: Path, say) -> tuple[dict | None, str]:
    """(prepare_results.json of this spec's data, or None with the reason)."""
    from pipelines import ROOT
    from pipelines.compile.definition import definition
    from pipelines.local.executor import Execution, Options
    from pipelines.local.run import stage
    from pipelines.store import open_store

    name = next(n.name for n in plan.graph.of_kind("prepare"))
    options = Options(store=open_store(store_root.resolve()), runs=runs.resolve(), registry=runs.resolve() / "registry",
                      code_root=ROOT, only=name, say=say)
    stage(plan, options)
    outcome = Execution(json.loads(definition(plan)), options, plan.pipeline_name).run()
    result = outcome.steps[name]
    if result["status"] not in ("Succeeded", "Cached"):
        return None, f"{name} failed: {result.get('reason', '')} (log: {result.get('log', outcome.folder)})"
    uri = next(o["S3Output"]["S3Uri"] for o in result["properties"]["ProcessingOutputConfig"]["Outputs"]
               if o["OutputName"] == "prepared")
    with tempfile.TemporaryDirectory() as tmp:
        options.store.download(uri.rstrip("/") + "/prepare_results.json", Path(tmp))
        return json.loads((Path(tmp) / "prepare_results.json").read_text(encoding="utf-8")), ""


def hyperparameters(plan: Plan, name: str) -> Hyperparameters:
    spec = plan.spec
    model = next(m for m in spec.models if m.name == name)
    return Hyperparameters.model_validate({**spec.train.hyperparameters.model_dump(), **model.hyperparameters})


def rates(model_dir: Path, max_length: int, batch_size: int, labels: int) -> dict:
    """Rows a second on this machine: training (forward, backward, optimizer) and validation (forward only)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=labels,
                                                               ignore_mismatched_sizes=True).to(device)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, max_length), device=device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.zeros(batch_size, dtype=torch.long,
                                                                                              device=device)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train_step() -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def eval_step() -> None:
        with torch.no_grad():
            model(**batch)

    return {"device": device, "train": _per_second(train_step, batch_size, device),
            "validation": _per_second(eval_step, batch_size, device)}


def _per_second(step, rows: int, device: str) -> float:
    import torch

    step()  # warm-up: allocation and kernel choice are not steady state
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(PROBE_STEPS):
        step()
    sync()
    return rows * PROBE_STEPS / (time.perf_counter() - started)


def remembered_rates(runs: Path, key: str, measure) -> dict:
    path = runs / "estimates.json"
    known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if key not in known:
        known[key] = {**measure(), "measured": time.strftime("%Y-%m-%d %H:%M")}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=2, sort_keys=True), encoding="utf-8")
    return known[key]


def model_lines(plan: Plan, name: str, m: dict, labels: int, runs: Path) -> list[str]:
    """What one model's data costs: rows, windows, steps, and the time on this machine."""
    import platform

    hp = hyperparameters(plan, name)
    tuned = set(plan.spec.tune.ranges) if plan.spec.tuning and plan.spec.tune else set()
    w, rows = m["windows_per_document"], m["training_rows_per_epoch"]
    lines = [f"  {name}: {m['documents']:,} documents → rows train {m['rows'].get('train', 0):,}, validation "
             f"{m['rows'].get('validation', 0):,}, test {m['rows'].get('test', 0):,}; windows per document median "
             f"{w['median']:g}, p95 {w['p95']:g}, max {w['max']:,}; {rows:,} training rows per epoch"
             + (f" (max_windows {m['max_windows']})" if m.get("max_windows") and w["max"] > 1 else "")]
    source = plan.uploads.get(plan.model(name).pretrained_uri or "")
    if source is None:
        return lines + ["    no time estimate: the model is not a local folder"]
    try:
        weights = plan.model(name).pretrained_uri.rstrip("/").rsplit("/", 1)[-1]  # the folder's content digest
        # batches are grouped by length and padded to their longest row: time rows of the mean length
        length = max(8, math.ceil(m.get("mean_tokens_per_training_row") or plan.model(name).spec.max_length))
        key = f"{weights}|{length}|{hp.batch_size}|{platform.node()}"
        rate = remembered_rates(runs, key, lambda: rates(source, length, hp.batch_size, labels))
    except (OSError, ValueError, RuntimeError, IndexError) as exc:  # a model AutoModel cannot time
        return lines + [f"    no time estimate: the model at {source} did not load ({str(exc)[:120]})"]
    batches = math.ceil(rows / hp.batch_size)
    per_epoch = math.ceil(batches / hp.gradient_accumulation_steps)
    steps = min(hp.max_steps, per_epoch * hp.epochs) if hp.max_steps else per_epoch * hp.epochs
    epochs_run = math.ceil(steps / max(per_epoch, 1)) if per_epoch else 0
    trained = min(steps * hp.batch_size * hp.gradient_accumulation_steps, rows * hp.epochs)
    seconds = trained / rate["train"] + epochs_run * m["rows"].get("validation", 0) / rate["validation"]
    note = " (batch_size is tuned: this is its spec value)" if "batch_size" in tuned else ""
    cut = (f"; max_steps {hp.max_steps} stops it in epoch {epochs_run} of {hp.epochs}"
           if hp.max_steps and steps < per_epoch * hp.epochs else "")
    return lines + [f"    {per_epoch:,} steps per epoch at batch_size {hp.batch_size}{note}, {steps:,} steps in all{cut}",
                    f"    on this machine ({rate['device']}, fp32, rows of {length} tokens: {rate['train']:,.1f} training and "
                    f"{rate['validation']:,.1f} validation rows/s, measured {rate['measured']}): about "
                    f"{_duration(seconds)} of training and validation steps (start-up and export not counted)"]


def estimate(plan: Plan, store_root: Path, runs: Path, say) -> list[str]:
    """The lines `make plan` and `make validate` print; none where the data is not local. ``say`` gets the
    executor's lines while Reconcile and Prepare run."""
    if not data_is_local(plan):
        return []
    from pipelines.spec.errors import SpecError

    try:
        results, why = prepared(plan, store_root, runs, say)
    except SpecError as exc:  # a local folder the run needs is missing: the plan itself stands
        results, why = None, "; ".join(str(p) for p in exc.problems)
    head = "data (counted by this spec's Reconcile and Prepare, run here; make local reuses them from the cache)"
    if results is None:
        return [head, f"  warning: could not count the rows: {why}"]
    labels = len(results.get("labels", []))
    return [head, *[line for name, m in results["models"].items() for line in model_lines(plan, name, m, labels, runs)]]
