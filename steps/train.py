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
import json
import math
import os
import shutil
import time
from pathlib import Path

from steps import checkpoints, contract, throughput, tracking, udf
from steps.batching import LengthGroupedBatches, collate, row_lengths
from steps.common import StepError, aggregate_windows, classification_metrics, read_labels, run_main, write_json

HYPERPARAMETERS = {  # name → (type, default); the spec's Hyperparameters mirror these
    "epochs": (int, 3), "learning_rate": (float, 3e-5), "batch_size": (int, 32),
    "gradient_accumulation_steps": (int, 1), "warmup_ratio": (float, 0.06), "weight_decay": (float, 0.01),
    "precision": (str, "auto"), "seed": (int, 42), "objective": (str, "validation:macro_f1"),
    "group_by_length": (str, "true"), "torch_compile": (str, "true"), "max_steps": (int, 0),
    "model_name": (str, "model"), "init": (str, "pretrained"), "hub_model_id": (str, ""),
}
STOP_AFTER_EPOCH_ENV = "SMPIPE_STOP_AFTER_EPOCH"  # simulates a spot interruption (tests)
HANG_AFTER_EPOCH_ENV = "SMPIPE_HANG_AFTER_EPOCH"  # holds the job after a checkpoint, to be killed (tests)
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


def model_source(args) -> str:
    if (args.pretrained / "config.json").is_file():
        return str(args.pretrained)
    if args.hub_model_id:
        return args.hub_model_id
    raise StepError(f"no pretrained model at {args.pretrained} (config.json missing) and no hub_model_id; "
                    "check models[].source")


def mixed_precision(requested: str) -> str:
    import torch

    if requested == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return {"fp32": "no"}.get(requested, requested)


def make_loader(dataset, batch_size: int, seed: int, shuffle: bool, group: bool, pad_id: int):
    import torch

    sampler = LengthGroupedBatches(row_lengths(dataset), batch_size, seed, shuffle, group)
    # On GPU, two workers collate the next batches into pinned memory while the GPU runs this one.
    workers = 2 if torch.cuda.is_available() else 0
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate(pad_id),
                                         pin_memory=workers > 0, num_workers=workers, persistent_workers=workers > 0)
    return loader, sampler


def progress_bar(iterable, desc: str, enabled: bool):
    """tqdm on the main process; sparse updates when the output is a log file, not a terminal."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=not enabled, mininterval=0.5 if sys.stderr.isatty() else 30)


def evaluate(model, loader, accelerator, num_labels: int) -> dict[str, float]:
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
    _, logits, labels = aggregate_windows(np.concatenate(docs_all), np.concatenate(logits_all), np.concatenate(labels_all))
    metrics = classification_metrics(labels, logits.argmax(-1), num_labels)
    return {"validation:loss": float(np.concatenate(losses).mean()),
            **{f"validation:{k}": v for k, v in metrics.items()}}


def better(value: float, best: float | None, objective: str) -> bool:
    if best is None:
        return True
    return value < best if objective.endswith("loss") else value > best


def save_checkpoint(accelerator, ckpt: Path, epoch: int, progress: dict) -> None:
    """Written under a temporary name and renamed: the checkpoint folder is synced to S3 while training
    runs, so a folder that exists is complete, and progress.json only ever names a complete one."""
    staging = ckpt / f"epoch_{epoch}.tmp"
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_local_main_process:
        replace_dir(staging, ckpt / f"epoch_{epoch}")
    if accelerator.is_main_process:
        write_json(ckpt / "progress.json", progress)
        for old in ckpt.glob("epoch_*"):
            if old.name != f"epoch_{epoch}":
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def replace_dir(staging: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def save_best(accelerator, base, tokenizer, ckpt: Path) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = ckpt / "best.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        base.save_pretrained(str(staging), safe_serialization=True)
        tokenizer.save_pretrained(str(staging))
        replace_dir(staging, ckpt / "best")
    accelerator.wait_for_everyone()


def plot_curves(history: list[dict], steps: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if steps:
        left.plot([s for s, _ in steps], [v for _, v in steps], label="train loss")
    left.plot([h["step"] for h in history], [h["validation:loss"] for h in history], "o-", label="validation loss")
    left.set_xlabel("optimizer step")
    left.legend()
    for key in ("validation:accuracy", "validation:macro_f1"):
        right.plot([h["epoch"] for h in history], [h[key] for h in history], "o-", label=key)
    right.set_xlabel("epoch")
    right.set_ylim(0, 1)
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compile_plugin(args, lengths: list[int]):
    """torch.compile on GPU, applied by accelerate after DDP wrapping (all-reduce still overlaps backward).

    Uniform lengths: the whole model, static shapes. Variable lengths on one GPU: the whole model with
    symbolic shapes (one compilation, not one per batch width). Variable lengths on several GPUs: each
    repeated layer on its own (regional), because DDP's graph splitting failed to compile symbolic
    shapes on torch 2.11 (InductorError "expected [s16] to have been codegen-ed", 2×H200).
    """
    import torch
    from accelerate.utils import TorchDynamoPlugin

    if not (args.torch_compile and torch.cuda.is_available()):
        return TorchDynamoPlugin(backend="no")
    if min(lengths, default=0) == max(lengths, default=0):
        return TorchDynamoPlugin(backend="inductor")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return TorchDynamoPlugin(backend="inductor", use_regional_compilation=True)
    return TorchDynamoPlugin(backend="inductor", dynamic=True)


def setup(args):
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    if not (args.data_dir / "dataset_dict.json").is_file():
        raise StepError(f"{args.data_dir} is not a prepared dataset (dataset_dict.json missing)")
    labels = read_labels(args.data_dir)
    data = load_from_disk(str(args.data_dir)).with_format(None)
    lengths = row_lengths(data["train"])
    torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 leftovers of mixed precision use tensor cores
    # cpu=True on a GPU-less host: accelerate then runs N launched processes as MULTI_CPU (gloo), not N copies.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision(args.precision),
                              gradient_accumulation_steps=args.gradient_accumulation_steps,
                              dynamo_plugin=compile_plugin(args, lengths),
                              kwargs_handlers=[DistributedDataParallelKwargs(gradient_as_bucket_view=True)])
    set_seed(args.seed)
    source = model_source(args)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = udf.function("load_model")(source, labels, args.init)
    return accelerator, labels, data, tokenizer, model


def make_optimizer(model, args):
    import torch

    decay = [p for _, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for _, p in model.named_parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.learning_rate,
                             fused=torch.cuda.is_available())


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


def main(argv=None) -> int:
    import torch
    from transformers import get_linear_schedule_with_warmup

    args = parse_args(argv)
    if args.objective not in contract.TRAINING_METRICS:
        raise StepError(f"objective {args.objective!r} is not one of {contract.TRAINING_METRICS}")
    accelerator, labels, data, tokenizer, base = setup(args)
    pad_id = tokenizer.pad_token_id or 0
    train_loader, train_sampler = make_loader(data["train"], args.batch_size, args.seed, True, args.group_by_length, pad_id)
    val_loader, _ = make_loader(data["validation"], args.batch_size * 2, args.seed, False, True, pad_id)
    # base: the plain module (shares its parameters with the wrapped, compiled one); used for
    # validation (eager: no second compilation for eval mode) and for saving.
    model, optimizer, train_loader, val_loader = accelerator.prepare(base, make_optimizer(base, args), train_loader,
                                                                     val_loader)
    per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    total = per_epoch * args.epochs if not args.max_steps else min(args.max_steps, per_epoch * args.epochs)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), max(total, 1))
    accelerator.register_for_checkpointing(scheduler)

    ckpt = args.checkpoint_dir = checkpoints.own_dir(args.checkpoint_dir)
    progress = resume(accelerator, args, ckpt)
    run = tracking.start({k: str(v) for k, v in vars(args).items()} | {"labels": labels}, f"{args.model_name}-train",
                         str(contract.output_data_dir())) if accelerator.is_main_process else None
    step, step_losses = progress["epoch"] * per_epoch, []
    for epoch in range(progress["epoch"] + 1, args.epochs + 1):
        train_sampler.epoch = epoch
        meter, epoch_losses = new_meter(base, accelerator, per_epoch), []
        started, samples, loss_sum, batches = time.perf_counter(), 0, torch.zeros((), device=accelerator.device), 0
        for batch in progress_bar(train_loader, f"epoch {epoch}", accelerator.is_local_main_process):
            batch.pop("doc_id")
            meter.batch(batch["attention_mask"])
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step() if accelerator.sync_gradients else None
                optimizer.zero_grad(set_to_none=True)
            loss_sum, batches, samples = loss_sum + loss.detach().float(), batches + 1, samples + batch["input_ids"].shape[0]
            if accelerator.sync_gradients:
                step += 1
                meter.step(device_sync)
                if step % LOSS_EVERY == 0 or step == 1:
                    epoch_losses.append((step, loss.detach().float()))
                if args.max_steps and step >= args.max_steps:
                    break
        device_sync()
        elapsed = time.perf_counter() - started
        speed = meter.stop(device_sync, reduce_sum(accelerator))
        for s, value in epoch_losses:
            step_losses.append((s, float(value)))
            tracking.log(run, {"train:loss": step_losses[-1][1]}, s)
        metrics = evaluate(base, val_loader, accelerator, len(labels))
        metrics["train:loss"] = float(loss_sum) / max(batches, 1)
        metrics["train:samples_per_second"] = samples * accelerator.num_processes / max(elapsed, 1e-9)
        for name in contract.TRAINING_METRICS:
            accelerator.print(contract.metric_line(name, metrics[name]))
        report_speed(accelerator, epoch, speed)
        tracking.log(run, {**metrics, "epoch": epoch}, step)
        improved = better(metrics[args.objective], progress["best"], args.objective)
        if improved:
            progress.update(best=metrics[args.objective], best_epoch=epoch)
            save_best(accelerator, base, tokenizer, ckpt)
        progress["history"].append({"epoch": epoch, "step": step, **metrics, "throughput": speed})
        progress["epoch"] = epoch
        save_checkpoint(accelerator, ckpt, epoch, progress)
        if os.environ.get(STOP_AFTER_EPOCH_ENV) == str(epoch):
            accelerator.print(f"stopping after epoch {epoch} ({STOP_AFTER_EPOCH_ENV})")
            return 3
        if os.environ.get(HANG_AFTER_EPOCH_ENV) == str(epoch):
            accelerator.print(f"holding after epoch {epoch} ({HANG_AFTER_EPOCH_ENV})")
            time.sleep(3600)
        if args.max_steps and step >= args.max_steps:
            break
    finish(accelerator, args, progress, labels, step_losses, run)
    return 0


def resume(accelerator, args, ckpt: Path) -> dict:
    """This run's own checkpoint, or a fresh start (another run's files are removed first)."""
    run = checkpoints.fingerprint({k: getattr(args, k) for k in HYPERPARAMETERS}, args.data_dir, args.pretrained,
                                  args.hub_model_id, accelerator.num_processes)
    progress, why = checkpoints.decide(ckpt, run, args.epochs)
    accelerator.wait_for_everyone()  # every process decided from the same files before any is removed
    if why:
        accelerator.print(why)
    if progress["epoch"]:
        accelerator.load_state(str(ckpt / f"epoch_{progress['epoch']}"))
    elif accelerator.is_main_process:
        checkpoints.clear(ckpt)
    accelerator.wait_for_everyone()
    return progress


def report_speed(accelerator, epoch: int, speed: dict | None) -> None:
    """Steady-state figures (after the warm-up steps) as metric lines, when the epoch was long enough."""
    import torch

    if speed is None:
        return
    if torch.cuda.is_available():
        speed["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    for key in contract.THROUGHPUT_METRICS:
        value = speed.get(key.split(":", 1)[1])
        if value is not None:
            accelerator.print(contract.metric_line(key, value))
    mfu = f", MFU {speed['mfu']:.1%}" if speed.get("mfu") else ""
    accelerator.print(f"epoch {epoch}: {speed['samples_per_second']:.0f} samples/s, {speed['tokens_per_second']:.0f} "
                      f"real tokens/s (padding efficiency {speed['padding_efficiency']:.1%}){mfu}")


def finish(accelerator, args, progress: dict, labels: list[str], step_losses, run) -> None:
    accelerator.wait_for_everyone()
    tracking.finish(run)
    if not accelerator.is_main_process:
        return
    hf_dir = args.model_dir / "hf"
    shutil.rmtree(hf_dir, ignore_errors=True)
    shutil.copytree(args.checkpoint_dir / "best", hf_dir)
    shutil.copy(args.data_dir / "labels.json", args.model_dir / "labels.json")
    if (args.data_dir / "model.json").is_file():
        shutil.copy(args.data_dir / "model.json", args.model_dir / "prepare_model.json")
    results = {"model_name": args.model_name, "objective": args.objective, "best": progress["best"],
               "best_epoch": progress["best_epoch"], "history": progress["history"], "labels": labels,
               "hyperparameters": {k: getattr(args, k) for k in HYPERPARAMETERS},
               "processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision}
    out = contract.output_data_dir()
    write_json(out / "train_results.json", results)
    write_json(args.model_dir / "train_results.json", results)
    plot_curves(progress["history"], step_losses, out / "curves.png")
    print(json.dumps({"best": progress["best"], "best_epoch": progress["best_epoch"], "objective": args.objective}))


if __name__ == "__main__":
    run_main(main)
