"""What training leaves behind: speed metric lines each epoch, and at the end the model directory,
train_results.json and curves.png (the main process only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from steps import contract
from steps.core import tracking
from steps.core.common import write_json


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


def finish(accelerator, args, hyperparameters: dict, progress: dict, labels: list[str], step_losses, run) -> None:
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        tracking.finish(run)
        return
    hf_dir = args.model_dir / "hf"
    shutil.rmtree(hf_dir, ignore_errors=True)
    shutil.copytree(args.checkpoint_dir / "best", hf_dir)
    shutil.copy(args.data_dir / "labels.json", args.model_dir / "labels.json")
    if (args.data_dir / "model.json").is_file():
        shutil.copy(args.data_dir / "model.json", args.model_dir / "prepare_model.json")
    results = {"model_name": args.model_name, "objective": args.objective, "best": progress["best"],
               "best_epoch": progress["best_epoch"], "history": progress["history"], "labels": labels,
               "hyperparameters": hyperparameters,
               "processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
               **{k: progress.get(k) for k in ("steps_run", "steps_planned", "max_steps", "epochs_planned",
                                               "train_seconds", "device")}}
    out = contract.output_data_dir()
    write_json(out / "train_results.json", results)
    write_json(args.model_dir / "train_results.json", results)
    plot_curves(progress["history"], step_losses, out / "curves.png")
    tracking.finish(run, [out / "train_results.json", out / "curves.png"])
    print(json.dumps({"best": progress["best"], "best_epoch": progress["best_epoch"], "objective": args.objective}))
