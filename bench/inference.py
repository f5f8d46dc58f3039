"""Our batched inference, timed in windows (bench/windows.py): the exported trace over a prepared test split,
pass after pass, as steps.evaluate runs it (token-budget batches, the next batch built while one runs).

    python bench/inference.py --model-dir DIR --data DIR [--split test] [--min-seconds 10] [--repeats 3]

SMPIPE_INFERENCE_PACKED=0 measures the padded trace where the unpadded pass would be taken.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.windows import MIN_WINDOW_S, REPEATS, measure  # noqa: E402


def passes(model_dir: Path, data_dir: Path, split: str = "test"):
    """(a function that scores every row of ``split`` once and returns the row count, logits back on the host;
    the device; which pass steps.evaluate's choice took: "unpadded" or "padded")."""
    import torch
    from datasets import concatenate_datasets, load_from_disk
    from transformers import AutoTokenizer

    from steps.inference.batching import TokenMatrix
    from steps.inference.planner import plan
    from steps.inference.torchscript import BUDGET, forward_pass, load, run_batches

    parts = load_from_disk(str(data_dir))
    test = concatenate_datasets([parts[k] for k in sorted(parts)]) if split == "all" else parts[split]
    hf = model_dir / "hf"
    pad_id = (AutoTokenizer.from_pretrained(str(hf)).pad_token_id if hf.is_dir() else None) or 0
    trace, device, keys = load(model_dir)
    matrix = TokenMatrix.from_dataset(test)
    batches = plan(matrix.lengths, *BUDGET[device])
    with torch.inference_mode(), torch.jit.optimized_execution(False):
        module, tensors = forward_pass(model_dir, trace, device, keys, matrix, pad_id, batches, "bench")

    def one_pass() -> int:
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            outputs = run_batches(module, batches, tensors, device)
            torch.cat(outputs).float().cpu()
        return len(test)

    one_pass()  # warm-up: the first call of each shape is not throughput
    one_pass.rows = len(test)
    return one_pass, device, "padded" if module is trace else "unpadded"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="a prepared dataset folder of one model")
    p.add_argument("--split", default="test", help="a split of the prepared dataset, or all of them")
    p.add_argument("--min-seconds", type=float, default=MIN_WINDOW_S)
    p.add_argument("--repeats", type=int, default=REPEATS)
    args = p.parse_args()
    one_pass, device, kind = passes(args.model_dir, args.data, args.split)
    print(json.dumps({**measure(one_pass, args.min_seconds, args.repeats), "device": device, "pass": kind,
                      "rows": one_pass.rows, "split": args.split}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
