"""Where batched inference's GPU time goes: one pass of bench/inference.py over every row of a prepared dataset
under torch.profiler, the kernels grouped by name, and how much of the pass's wall time the GPU was busy.

    python bench/inference_where.py --model-dir DIR --data DIR [--split test]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def kernels(profile, top: int = 20) -> tuple[list, float]:
    """(name, milliseconds, share) of the ``top`` kernels by total device time, and that total (ms)."""
    totals: collections.Counter = collections.Counter()
    for event in profile.events():
        if getattr(event, "device_type", None) is not None and "CUDA" in str(event.device_type):
            totals[event.name[:90]] += event.device_time_total if hasattr(event, "device_time_total") \
                else event.cuda_time_total
    whole = sum(totals.values()) / 1000
    return [(name, round(us / 1000, 2), round(us / 1000 / whole, 3)) for name, us in totals.most_common(top)], whole


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="a prepared dataset folder of one model")
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.inference import passes
    from bench.provenance import provenance, result_path

    one_pass, device, kind = passes(args.model_dir, args.data, args.split)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    rows = one_pass()
    plain = time.perf_counter() - started
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        started = time.perf_counter()
        one_pass()
        sync()
        wall = time.perf_counter() - started
    top, busy = kernels(prof)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    result = {**provenance(), "device": name, "torch": torch.__version__, "rows": rows, "pass": kind,
              "rows_per_second_unprofiled": round(rows / plain, 1), "profiled_wall_ms": round(1000 * wall, 1),
              "kernel_ms": round(busy, 1), "gpu_busy": round(busy / (1000 * wall), 3) if busy else None, "kernels": top}
    path = result_path(f"inference-where{'-' + args.tag if args.tag else ''}", args.out)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1), f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
