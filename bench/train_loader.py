"""Can the training loader keep the GPU fed? The training program's own loader (steps/training/setup.make_loader)
over a bench case's prepared train split, with the GPU job's two collating workers, drained as fast as the main
process can take batches, one layout at a time (padded, unpadded). What it delivers is the ceiling the loader
puts on the step rate; a GPU step rate below it means the loader is not what the step waits for.

    python bench/train_loader.py [--case docs] [--workers 2] [--seconds 10] [--out bench/results]

Windows of at least ``--seconds``, median of 3 (bench/windows.py); batches/s, rows/s and real tokens/s.
Pinned memory is left out (it needs a GPU): on a GPU host the pin thread adds a copy per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def endless(loader, sampler):
    epoch = 0
    while True:
        epoch += 1
        sampler.epoch = epoch
        yield from loader


def measure(train, layout: str, batch: int, workers: int, seconds: float) -> dict:
    from bench import windows
    from steps.training.setup import make_loader

    loader, sampler = make_loader(train, batch, 42, True, True, 0, unpadded=layout == "unpadded", workers=workers)
    stream, counts = endless(loader, sampler), {"rows": 0, "tokens": 0}

    def one_batch() -> int:
        b = next(stream)
        counts["rows"] += int(b["labels"].shape[0])
        counts["tokens"] += int(b["lengths"].sum() if "lengths" in b else b["attention_mask"].sum())
        return 1

    one_batch()  # the workers' start-up is not throughput
    counts.update(rows=0, tokens=0)
    figure = windows.measure(one_batch, seconds)
    figure["batches_per_window"] = figure.pop("rows_per_window")
    batches = sum(figure["batches_per_window"])
    rate = figure.pop("rows_per_second")
    return {"layout": layout, "batches_per_second": round(rate, 1), **figure,
            "rows_per_second": round(rate * counts["rows"] / batches),
            "tokens_per_second": round(rate * counts["tokens"] / batches),
            "tokens_per_batch": round(counts["tokens"] / batches, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="docs", choices=["docs", "full128", "full512"])
    p.add_argument("--workers", type=int, default=2, help="collating processes (the GPU job's: 2)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "train-ab")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args()
    from datasets import load_from_disk

    from bench import gpu
    from bench.provenance import provenance, result_path
    from bench.train_ab import prepared

    os.environ.setdefault("WANDB_MODE", "disabled")
    train = load_from_disk(str(prepared(args.work, args.case)))["train"].with_format(None)
    batch = gpu.CASES[args.case][1]
    result = {**provenance(), "case": args.case, "batch_size": batch, "workers": args.workers, "train_rows": len(train),
              "layouts": [measure(train, layout, batch, args.workers, args.seconds) for layout in ("padded", "unpadded")]}
    path = result_path(f"train-loader-{args.case}", args.out)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["layouts"], indent=1), f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
