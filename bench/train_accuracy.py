"""Does the unpadded layout change what training learns? Padded and unpadded batches (steps/training/packed.py)
trained from the same seeds on the same prepared data, through the training program's own build() and
train_epoch(); the validation metrics of every epoch, per layout and seed, in one result file.

    python bench/train_accuracy.py --data PREPARED/minilm --pretrained .models/all-MiniLM-L6-v2 \\
        --epochs 3 --learning-rate 1e-4 --batch-size 32 --seeds 1 2 3 [--cpu-reference]

The unpadded layout differs from the padded one in one way: no attention-probability dropout.
``--cpu-reference`` runs it on a host without a GPU, attention computed row by row by SDPA in place of the
flash kernel: the layout's numbers, not its speed (the speed is bench/train_ab.py's, on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYOUTS = {"padded": "0", "unpadded": "1"}
REPORTED = ("validation:accuracy", "validation:macro_f1", "validation:loss", "train:loss")


def build(data: Path, pretrained: Path, work: Path, layout: str, hp: dict):
    """The training program's Loop for ``layout`` with hyperparameters ``hp`` (flag name → value)."""
    from accelerate.state import AcceleratorState

    from steps import train

    os.environ["SMPIPE_TRAIN_PACKED"] = LAYOUTS[layout]  # unpadded: opt-in (steps/training/packed.py)
    AcceleratorState._reset_state(True)
    argv = ["--data-dir", str(data), "--pretrained", str(pretrained), "--model-dir", str(work / f"model-{layout}"),
            "--checkpoint-dir", str(work / f"ckpt-{layout}")]
    return train.build(train.parse_args(argv + [a for k, v in hp.items() for a in (f"--{k}", str(v))]))


def use_cpu_reference() -> None:
    """The unpadded layout on CPU: the row-at-a-time attention stands in for the flash kernel."""
    from steps.inference import packed as inference_packed
    from steps.training import packed

    checks = packed.unsupported
    inference_packed.flash_attention = inference_packed.padded_attention
    packed.unsupported = lambda model, device, processes, precision="no": checks(model, "cuda", processes, "bf16")


def run(data: Path, pretrained: Path, work: Path, layout: str, hp: dict) -> dict:
    from steps import train
    from steps.training import packed

    t = build(data, pretrained, work, layout, hp)
    if (layout == "unpadded") != isinstance(t.model, packed.PackedClassifier):
        raise SystemExit(f"{layout}: the training program built {type(t.model).__name__}")
    started, epochs = time.perf_counter(), []
    for epoch in range(1, int(hp["epochs"]) + 1):
        metrics, _ = train.train_epoch(t, epoch)
        epochs.append({k: round(metrics[k], 5) for k in REPORTED})
    return {"layout": layout, "seed": hp["seed"], "steps": t.step, "seconds": round(time.perf_counter() - started, 1),
            "epochs": epochs}


def summary(runs: list[dict]) -> dict:
    """Per layout: mean and standard deviation over seeds of the last epoch's metrics."""
    out = {}
    for layout in LAYOUTS:
        last = [r["epochs"][-1] for r in runs if r["layout"] == layout]
        out[layout] = {k: {"mean": round(statistics.mean(e[k] for e in last), 4),
                           "stdev": round(statistics.stdev(e[k] for e in last), 4) if len(last) > 1 else None}
                       for k in REPORTED}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a prepared dataset folder of one model")
    p.add_argument("--pretrained", type=Path, required=True)
    p.add_argument("--init", default="pretrained", choices=["pretrained", "random"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--cpu-reference", action="store_true", help="the unpadded layout on CPU, attention row by row")
    p.add_argument("--tag", default="")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "train-accuracy")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args()
    import torch

    from bench.provenance import provenance, result_path

    os.environ.setdefault("WANDB_MODE", "disabled")
    if args.cpu_reference:
        if torch.cuda.is_available():
            raise SystemExit("--cpu-reference is for hosts without a GPU")
        use_cpu_reference()
    result = {**provenance(), "torch": torch.__version__, "data": str(args.data), "pretrained": str(args.pretrained),
              "attention": "row-at-a-time SDPA on CPU (--cpu-reference)" if args.cpu_reference else "the host's own",
              "hyperparameters": {}, "runs": []}
    path = result_path(f"train-accuracy{'-' + args.tag if args.tag else ''}", args.out)
    for seed in args.seeds:
        hp = {"epochs": args.epochs, "learning-rate": args.learning_rate, "batch-size": args.batch_size,
              "init": args.init, "seed": seed, "model-name": "accuracy"}
        result["hyperparameters"] = {k: v for k, v in hp.items() if k != "seed"}
        for layout in LAYOUTS:
            result["runs"].append(run(args.data, args.pretrained, args.work / f"{layout}-{seed}", layout, hp))
            print(f"train-accuracy: {json.dumps(result['runs'][-1])}", flush=True)
            path.write_text(json.dumps(result, indent=1) + "\n")
    result["summary"] = summary(result["runs"])
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1), f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
