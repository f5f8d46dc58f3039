"""Training step A/B on one GPU: padded against unpadded batches (steps/training/packed.py), in one process,
one layout at a time, each through the training program's own build() and train_step().

    python bench/train_ab.py --case docs [--windows 3] [--seconds 10] [--accuracy]

For each layout: the model is built and compiled, warmed up, then timed over ``--windows`` steady-state windows
of at least ``--seconds`` each (samples/s, real tokens/s and MFU: steps/training/throughput.py), then a few
steps run under torch.profiler (GPU busy share, the top kernels). ``--accuracy``: each layout then trains one
epoch from the same seed and reports validation metrics. One result file for all of it (bench/provenance.py).
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



def prepared(work: Path, case: str) -> Path:
    """The case's prepared dataset, made once under ``work`` (bench/gpu.py's data)."""
    import gzip

    from bench import gpu

    if case == "docs":
        with gzip.open(gpu.ASSETS / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        return gpu.prepare(work, "docs", rows, ["docs:512:head:0:"], "0.8,0.05,0.15") / "docs"
    vocab = [w for w in (gpu.ASSETS / "bert-base" / "vocab.txt").read_text(encoding="utf-8").split()
             if w.isalpha() and w.islower()]
    length = gpu.CASES[case][0]
    return gpu.prepare(work, case, gpu.synthetic_rows(vocab, gpu.SYNTHETIC_DOCS), [f"{case}:{length}:head:0:"],
                       "0.8,0.02,0.18") / case


def hyperparameters(case: str, seed: int, batch: int) -> dict:
    from bench import gpu

    return {"epochs": 1, "batch-size": batch or gpu.CASES[case][1], "learning-rate": 5e-5, "init": "random",
            "seed": seed, "model-name": case}


def build(data: Path, work: Path, case: str, layout: str, seed: int = 42, batch: int = 0):
    from bench import gpu, train_accuracy

    return train_accuracy.build(data, gpu.ASSETS / "bert-base", work, layout, hyperparameters(case, seed, batch))


def batches(t):
    """The training batches, epoch after epoch (a window may outlast one epoch)."""
    epoch = 0
    while True:
        epoch += 1
        t.train_sampler.epoch = epoch
        yield from t.train_loader


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def step(t, stream) -> tuple:
    """The next batch through the training program's own step, counted as the program counts it."""
    from steps import train

    batch = next(stream)
    batch.pop("doc_id")
    lengths_and_tokens = train.tokens(batch)
    train.train_step(t, batch)
    return lengths_and_tokens


def timed_window(t, stream, seconds: float) -> dict:
    from steps.train import device_sync as sync
    from steps.training import throughput

    meter = throughput.Meter(throughput.model_shape(t.base), device_name(), 1, warmup=1)
    while meter.started is None or time.perf_counter() - meter.started < seconds:
        meter.batch(*step(t, stream))
        meter.step(sync)
    return meter.stop(sync)


def profiled(t, stream, steps: int = 8) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from bench.inference_where import kernels
    from steps.train import device_sync as sync

    sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        started = time.perf_counter()
        for _ in range(steps):
            step(t, stream)
        sync()
        wall = time.perf_counter() - started
    top, busy = kernels(prof, top=15)
    return {"steps": steps, "wall_ms": round(1000 * wall, 1), "kernel_ms": round(busy, 1),
            "gpu_busy": round(busy / (1000 * wall), 3) if busy else None, "kernels": top}


def measure(data: Path, work: Path, case: str, layout: str, windows: int, seconds: float, batch: int) -> dict:
    import torch

    started = time.perf_counter()
    t = build(data, work, case, layout, batch=batch)
    stream = batches(t)
    warm = timed_window(t, stream, 3.0)  # compilation and the allocator's warm-up
    runs = [timed_window(t, stream, seconds) for _ in range(windows)]
    result = {"layout": layout, "model": type(t.model).__name__, "warm_up_seconds": round(time.perf_counter() - started, 1),
              "first_window": warm, "windows": runs, "profile": profiled(t, stream),
              "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None}
    for key in ("samples_per_second", "tokens_per_second", "mfu", "padding_efficiency"):
        result[key] = statistics.median(r[key] for r in runs)
    del t, stream
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return result


def accuracy(data: Path, work: Path, case: str, layout: str, seed: int, batch: int) -> dict:
    """One epoch from ``seed``, then the training program's own validation (bench/train_accuracy.py)."""
    from bench import gpu, train_accuracy

    return train_accuracy.run(data, gpu.ASSETS / "bert-base", work / f"accuracy-{seed}", layout,
                              hyperparameters(case, seed, batch))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="docs", choices=["docs", "full128", "full512"])
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=0, help="default: the case's (bench/gpu.py)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--layouts", nargs="+", default=["padded", "unpadded"], choices=["padded", "unpadded"])
    p.add_argument("--compile-mode", default="default", help="torch.compile mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--blocking-copy", action="store_true", help="the batch's copy to the GPU blocks (as before eb3d317)")
    p.add_argument("--multiple", type=int, default=0, help="unpadded: pad each batch's tokens to this multiple")
    p.add_argument("--accuracy", type=int, nargs="*", default=None, metavar="SEED",
                   help="also train one epoch per layout from each SEED (default seed 42) and report validation")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "train-ab")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args()
    import torch

    from bench.provenance import provenance, result_path

    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ["SMPIPE_TRAIN_COMPILE_MODE"] = args.compile_mode
    if args.blocking_copy:
        import accelerate

        config = accelerate.DataLoaderConfiguration
        accelerate.DataLoaderConfiguration = lambda **kw: config(**{**kw, "non_blocking": False})
    if args.multiple:
        os.environ["SMPIPE_TRAIN_PACKED_MULTIPLE"] = str(args.multiple)
    data = prepared(args.work, args.case)
    result = {**provenance(), "device": device_name(), "torch": torch.__version__, "case": args.case,
              "compile_mode": args.compile_mode,
              "blocking_copy": args.blocking_copy, "multiple": args.multiple or None, "layouts": {}}
    tag = ("" if args.compile_mode == "default" else f"-{args.compile_mode}") + ("-blocking" if args.blocking_copy else "")
    path = result_path(f"train-ab-{args.case}{tag}", args.out)

    for layout in args.layouts:
        result["layouts"][layout] = measure(data, args.work, args.case, layout, args.windows, args.seconds,
                                            args.batch_size)
        path.write_text(json.dumps(result, indent=1) + "\n")
        brief = {k: v for k, v in result["layouts"][layout].items() if k not in ("windows", "profile", "first_window")}
        print(f"train-ab {args.case} {layout}: {json.dumps(brief)}", flush=True)
    if len(args.layouts) == 2:
        padded, unpadded = (result["layouts"][k] for k in ("padded", "unpadded"))
        result["unpadded_over_padded_tokens_per_second"] = round(unpadded["tokens_per_second"] /
                                                                 padded["tokens_per_second"], 3)
    if args.accuracy is not None:
        result["accuracy"] = [accuracy(data, args.work, args.case, layout, seed, args.batch_size)
                              for seed in (args.accuracy or [42]) for layout in args.layouts]
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "layouts"}, indent=1), f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
