"""Where a served forward pass spends its time on this machine: the exported TorchScript trace (as the serving
program runs it, and with the default graph executor) against the eager HF model in bf16, per batch size.

    python bench/serving_forward.py [--model bert-base]   # after bench/serving.py made bench/out/serving
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int = 20) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    return round(1000 * (time.perf_counter() - started) / repeats, 3)


def main() -> int:
    import torch
    from transformers import AutoModelForSequenceClassification

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", type=Path, default=ROOT / "bench" / "out" / "serving" / "opt" / "ml" / "model")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if (args.model_dir / "hf").is_dir():
        trace = torch.jit.load(str(args.model_dir / ("model.cuda.pt" if device == "cuda" else "model.pt")),
                               map_location=device).eval()
        eager = AutoModelForSequenceClassification.from_pretrained(str(args.model_dir / "hf"), torch_dtype=dtype,
                                                                   attn_implementation="sdpa").to(device).eval()
    else:  # no artifact yet: BERT-base from random init, traced the way steps/export.py traces it
        from transformers import AutoConfig

        from steps.export import LogitsOnly

        config = AutoConfig.from_pretrained(str(ROOT / "bench" / "out" / "assets" / "bert-base"), num_labels=16)
        eager = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
        eager = eager.to(device, dtype=dtype).eval()
        sample = (torch.randint(1000, 20000, (8, 128), device=device),) * 1
        sample = (sample[0], torch.ones_like(sample[0]))
        with torch.no_grad():
            trace = torch.jit.freeze(torch.jit.trace(LogitsOnly.build(eager, ["input_ids", "attention_mask"]), sample,
                                                     strict=False, check_trace=False))
    out = {}
    for rows, length in ((1, 160), (8, 160), (64, 160), (1, 512)):
        ids = torch.randint(1000, 20000, (rows, length), device=device)
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            with torch.jit.optimized_execution(False):
                noopt = timed(lambda i=ids, m=mask: trace(i, m).float().cpu())
            opt = timed(lambda i=ids, m=mask: trace(i, m).float().cpu())
            hf = timed(lambda i=ids, m=mask: eager(input_ids=i, attention_mask=m).logits.float().cpu())
        out[f"{rows}x{length}"] = {"trace_simple_executor_ms": noopt, "trace_profiling_executor_ms": opt, "eager_ms": hf}
        print(f"{rows}x{length}: trace (as served) {noopt} ms, trace (profiling executor) {opt} ms, eager {hf} ms",
              flush=True)
    print(json.dumps({"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "ms": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
