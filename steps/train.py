"""Train: fine-tune a sequence classifier with accelerate, keep the best epoch, resume after interruption.

    accelerate launch -m steps.train          # what the launcher runs: every GPU of every host
    python -m steps.train --epochs 1          # one process, by hand

Reads the SageMaker training contract: hyperparameters.json, the ``train`` channel (prepare's
dataset for this model), the ``pretrained`` channel, /opt/ml/checkpoints, SM_MODEL_DIR.
Each epoch: validation metrics gathered across processes and printed as ``#metric name=value;`` lines
(the compiled metric_definitions parse them), a checkpoint (spot interruptions resume from it),
and the best model by the objective kept. Ends with train_results.json and curves.png.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from steps import contract
from steps.core import faults, tracking
from steps.core.common import StepError, aggregate_windows, classification_metrics, run_main, window_settings
from steps.core.progress import Progress
from steps.training import checkpoints, packed, throughput
from steps.training import report as train_report
from steps.training.setup import compile_mode, make_loader, make_optimizer, setup

HYPERPARAMETERS = {  # name → (type, default); the spec's Hyperparameters mirror these
    "epochs": (int, 3), "learning_rate": (float, 3e-5), "batch_size": (int, 32),
    "gradient_accumulation_steps": (int, 1), "warmup_ratio": (float, 0.06), "weight_decay": (float, 0.01),
    "precision": (str, "auto"), "seed": (int, 42), "objective": (str, "validation:macro_f1"),
    "group_by_length": (str, "true"), "torch_compile": (str, "true"), "max_steps": (int, 0),
    "model_name": (str, "model"), "init": (str, "pretrained"), "hub_model_id": (str, ""),
}
LOSS_EVERY = 10  # optimizer steps between recorded training losses (read at epoch end: no per-step sync)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (kind, _) in HYPERPARAMETERS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None)
    p.add_argument("--data-dir", type=Path, default=None, help="prepared dataset (default: train channel)")
    p.add_argument("--pretrained", type=Path, default=None, help="pretrained model (default: pretrained channel)")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--checkpoint-dir", type=Path, default=None)
    args = p.parse_args(argv)
    given = contract.hyperparameters()
    for name, (kind, default) in HYPERPARAMETERS.items():
        if getattr(args, name) is None:
            setattr(args, name, kind(given[name]) if name in given else default)
    args.group_by_length = str(args.group_by_length).lower() == "true"
    args.torch_compile = str(args.torch_compile).lower() == "true"
    args.data_dir = args.data_dir or contract.channel_dir(contract.CHANNEL_TRAIN)
    args.pretrained = args.pretrained or contract.channel_dir(contract.CHANNEL_PRETRAINED)
    args.model_dir = args.model_dir or contract.model_dir()
    args.checkpoint_dir = args.checkpoint_dir or contract.checkpoint_dir()
    return args


def progress_bar(iterable, desc: str, enabled: bool, total: int):
    """Progress lines on the main process (done, rate, time left): the job's log is never a terminal."""
    progress = Progress(desc, total=total, unit="batches") if enabled else None
    for item in iterable:
        yield item
        if progress:
            progress.update()
    if progress:
        progress.done()


def evaluate(model, loader, accelerator, num_labels: int, aggregation: str = "mean") -> dict[str, float]:
    import numpy as np
    import torch

    model.eval()
    losses, logits_all, labels_all, docs_all = [], [], [], []
    with torch.no_grad():
        for batch in loader:
            doc_id = batch.pop("doc_id")
            out = model(**batch)
            loss = out.loss.detach().float().repeat(batch["labels"].shape[0])
            logits, labels, docs, loss = accelerator.gather_for_metrics((out.logits.float(), batch["labels"], doc_id, loss))
            logits_all.append(logits.cpu().numpy())
            labels_all.append(labels.cpu().numpy())
            docs_all.append(docs.cpu().numpy())
            losses.append(loss.cpu().numpy())
    model.train()
    _, logits, labels = aggregate_windows(np.concatenate(docs_all), np.concatenate(logits_all), np.concatenate(labels_all),
                                          aggregation)
    metrics = classification_metrics(labels, logits.argmax(-1), num_labels)
    return {"validation:loss": float(np.concatenate(losses).mean()),
            **{f"validation:{k}": v for k, v in metrics.items()}}


def better(value: float, best: float | None, objective: str) -> bool:
    if best is None:
        return True
    return value < best if objective.endswith("loss") else value > best


def device_sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reduce_sum(accelerator):
    import torch

    def fn(values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
        return accelerator.reduce(tensor, reduction="sum").tolist()

    return fn


def new_meter(base, accelerator, steps_per_epoch: int):
    """Warm-up: 10 optimizer steps, or a quarter of a short epoch."""
    import torch

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    warmup = max(1, min(throughput.WARMUP_STEPS, steps_per_epoch // 4))
    return throughput.Meter(throughput.model_shape(base), name, accelerator.num_processes, warmup)


@dataclass
class Loop:
    """Everything one epoch needs; ``base`` is the plain module (it shares its parameters with the wrapped,
    compiled ``model``), used for validation (eager: no second compilation for eval mode) and saving."""

    args: argparse.Namespace
    accelerator: object
    model: object
    base: object
    tokenizer: object
    optimizer: object
    scheduler: object
    train_loader: object
    train_sampler: object
    val_loader: object
    labels: list
    per_epoch: int
    run: object = None
    graphs: bool = False  # torch.compile's CUDA graphs (SMPIPE_TRAIN_COMPILE_MODE=reduce-overhead) on the GPU
    step: int = 0
    step_losses: list = field(default_factory=list)


def build(args) -> Loop:
    from transformers import get_linear_schedule_with_warmup

    accelerator, labels, data, tokenizer, base = setup(args)
    pad_id = tokenizer.pad_token_id or 0
    max_windows, args.aggregation = window_settings(contract.read_json(args.data_dir / "model.json"))
    why = packed.unsupported(base, accelerator.device.type, accelerator.num_processes, accelerator.mixed_precision)
    accelerator.print(f"train {args.model_name}: {packed.note(base, why)}")
    train_loader, train_sampler = make_loader(data["train"], args.batch_size, args.seed, True, args.group_by_length,
                                              pad_id, max_windows, unpadded=why is None)
    val_loader, _ = make_loader(data["validation"], args.batch_size * 2, args.seed, False, True, pad_id)
    trained = base if why else packed.PackedClassifier(base, max(train_sampler.lengths, default=1))
    model, optimizer, train_loader, val_loader = accelerator.prepare(trained, make_optimizer(base, args), train_loader,
                                                                     val_loader)
    per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    total = per_epoch * args.epochs if not args.max_steps else min(args.max_steps, per_epoch * args.epochs)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), max(total, 1))
    accelerator.register_for_checkpointing(scheduler)
    graphs = args.torch_compile and accelerator.device.type == "cuda" and compile_mode() == "reduce-overhead"
    return Loop(args, accelerator, model, base, tokenizer, optimizer, scheduler, train_loader, train_sampler, val_loader,
                labels, per_epoch, graphs=graphs)


def tokens(batch: dict) -> tuple:
    """Real tokens of every row, and the tokens the step computes (padding included), of either batch layout."""
    if "lengths" in batch:
        return batch.pop("lengths"), batch["input_ids"].numel()
    return batch["attention_mask"].sum(1), batch["attention_mask"].numel()


def train_step(t: Loop, batch: dict):
    """One micro-batch forward and backward; the optimizer and the schedule step when gradients sync."""
    if t.graphs:  # CUDA graphs: a new step begins, the last step's outputs may be overwritten
        import torch

        torch.compiler.cudagraph_mark_step_begin()
    with t.accelerator.accumulate(t.model):
        loss = t.model(**batch).loss
        t.accelerator.backward(loss)
        t.optimizer.step()
        t.scheduler.step() if t.accelerator.sync_gradients else None
        t.optimizer.zero_grad(set_to_none=True)
    return loss


def train_epoch(t: Loop, epoch: int) -> tuple[dict, dict | None]:
    """One pass over the training data; losses stay on the device until the epoch ends (no per-step sync)."""
    import torch

    args, accelerator = t.args, t.accelerator
    t.train_sampler.epoch = epoch
    meter, epoch_losses = new_meter(t.base, accelerator, t.per_epoch), []
    started, samples, loss_sum, batches = time.perf_counter(), 0, torch.zeros((), device=accelerator.device), 0
    for batch in progress_bar(t.train_loader, f"train {args.model_name} epoch {epoch}/{args.epochs}",
                              accelerator.is_local_main_process, len(t.train_loader)):
        batch.pop("doc_id")
        meter.batch(*tokens(batch))
        loss = train_step(t, batch)
        loss_sum, batches, samples = loss_sum + loss.detach().float(), batches + 1, samples + batch["labels"].shape[0]
        if accelerator.sync_gradients:
            t.step += 1
            meter.step(device_sync)
            if t.step % LOSS_EVERY == 0 or t.step == 1:
                # a copy: under CUDA graphs (SMPIPE_TRAIN_COMPILE_MODE=reduce-overhead) the next step overwrites the output
                epoch_losses.append((t.step, loss.detach().float().clone()))
            if args.max_steps and t.step >= args.max_steps:
                break
    device_sync()
    elapsed = time.perf_counter() - started
    speed = meter.stop(device_sync, reduce_sum(accelerator))
    for s, value in epoch_losses:
        t.step_losses.append((s, float(value)))
        tracking.log(t.run, {"train:loss": t.step_losses[-1][1]}, s)
    metrics = evaluate(t.base, t.val_loader, accelerator, len(t.labels), args.aggregation)
    metrics["train:loss"] = float(loss_sum) / max(batches, 1)
    metrics["train:samples_per_second"] = samples * accelerator.num_processes / max(elapsed, 1e-9)
    return metrics, speed


def end_epoch(t: Loop, epoch: int, progress: dict, metrics: dict, speed: dict | None) -> int | None:
    """Metric lines, tracking, the best model, the checkpoint; an exit status when training must stop here."""
    args, accelerator = t.args, t.accelerator
    for name in contract.TRAINING_METRICS:
        accelerator.print(contract.metric_line(name, metrics[name]))
    train_report.report_speed(accelerator, epoch, speed)
    tracking.log(t.run, {**metrics, "epoch": epoch}, t.step)
    if better(metrics[args.objective], progress["best"], args.objective):
        progress.update(best=metrics[args.objective], best_epoch=epoch)
        checkpoints.save_best(accelerator, t.base, t.tokenizer, args.checkpoint_dir)
    progress["history"].append({"epoch": epoch, "step": t.step, **metrics, "throughput": speed})
    progress["epoch"] = epoch
    checkpoints.save_checkpoint(accelerator, args.checkpoint_dir, epoch, progress)
    if faults.requested(faults.STOP_AFTER_EPOCH, epoch):
        accelerator.print(f"stopping after epoch {epoch} ({faults.STOP_AFTER_EPOCH})")
        return 3
    if faults.requested(faults.HANG_AFTER_EPOCH, epoch):
        accelerator.print(f"holding after epoch {epoch} ({faults.HANG_AFTER_EPOCH})")
        time.sleep(3600)
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.objective not in contract.TRAINING_METRICS:
        raise StepError(f"objective {args.objective!r} is not one of {contract.TRAINING_METRICS}")
    print(f"train {args.model_name}: loading the data and the model", flush=True)
    t = build(args)
    t.accelerator.print(f"train {args.model_name}: {len(t.train_sampler.lengths):,} training rows, "
                        f"{len(t.train_loader):,} batches per epoch on {t.accelerator.num_processes} process(es)")
    args.checkpoint_dir = checkpoints.own_dir(args.checkpoint_dir)
    hyperparameters = {k: getattr(args, k) for k in HYPERPARAMETERS}
    progress = checkpoints.resume(t.accelerator, args, hyperparameters, args.checkpoint_dir)
    if t.accelerator.is_main_process:
        t.run = tracking.start({k: str(v) for k, v in vars(args).items()} | {"labels": t.labels},
                               f"{args.model_name}-train", str(contract.output_data_dir()),
                               step=f"Train-{args.model_name}",
                               data_sha256=contract.read_json(args.data_dir / "model.json").get("data_sha256", ""))
    t.step, started = progress["epoch"] * t.per_epoch, time.perf_counter()
    planned = t.per_epoch * args.epochs
    for epoch in range(progress["epoch"] + 1, args.epochs + 1):
        metrics, speed = train_epoch(t, epoch)
        stop = end_epoch(t, epoch, progress, metrics, speed)
        if stop is not None:
            return stop
        if args.max_steps and t.step >= args.max_steps:
            if t.step < planned:  # said in the log, the results and the report: a cap that cuts training short
                t.accelerator.print(f"max_steps {args.max_steps} reached in epoch {epoch} of {args.epochs}: "
                                    f"{t.step:,} of {planned:,} planned steps run")
            break
    progress.update(steps_run=t.step, steps_planned=planned, max_steps=args.max_steps, epochs_planned=args.epochs,
                    train_seconds=round(time.perf_counter() - started, 1), device=device_name(t.accelerator))
    train_report.finish(t.accelerator, args, hyperparameters, progress, t.labels, t.step_losses, t.run)
    return 0


def device_name(accelerator) -> str:
    import torch

    if accelerator.device.type == "cuda":
        return f"{accelerator.num_processes} × {torch.cuda.get_device_name(accelerator.device)}"
    return f"{accelerator.num_processes} × cpu"


if __name__ == "__main__":
    run_main(main)
