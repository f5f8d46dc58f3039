"""What we are compared with, each run in its own process by bench/gpu.py; prints one JSON line.

    python bench/contenders.py trainer --data DIR --model DIR --batch-size 64 --steps 160 [--bf16]
    python bench/contenders.py batch1 --data DIR --model DIR --rows 500

trainer: HF ``Trainer`` with its defaults (dynamic padding, random batches, fp32 unless --bf16),
timed in steady state the same way as our program: a window that opens after the warm-up steps,
with the same FLOP count over the same real tokens.
batch1: the original pipeline's inference loop: a TorchScript trace (fp32, on the GPU) called one
document at a time, timed in windows of at least 10 s (median of 3, bench/windows.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.windows import MIN_WINDOW_S, REPEATS, measure  # noqa: E402
from steps.training import throughput  # noqa: E402


def load_model(model_dir: Path, labels: int):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(model_dir), num_labels=labels)
    return AutoModelForSequenceClassification.from_config(config)


def dataset(data_dir: Path, split: str):
    from datasets import load_from_disk

    labels = json.loads((data_dir / "labels.json").read_text())["labels"]
    return load_from_disk(str(data_dir))[split].remove_columns(["doc_id"]), len(labels)


class Counting:
    """The Trainer's collator, recording each batch's real-token counts (the loader runs in-process)."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def __call__(self, features):
        lengths = [len(f["input_ids"]) for f in features]
        batch = self.inner(features)
        self.batches.append((len(lengths), sum(lengths), sum(n * n for n in lengths), batch["input_ids"].numel()))
        return batch


def trainer(args) -> dict:
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    train, labels = dataset(args.data, "train")
    model = load_model(args.model, labels)
    collator = Counting(DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(args.model))))
    marks = {}

    class Window(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            if state.global_step in (throughput.WARMUP_STEPS, args.steps):
                torch.cuda.synchronize()
                marks[state.global_step] = time.perf_counter()

    options = TrainingArguments(output_dir="/tmp/bench-trainer", per_device_train_batch_size=args.batch_size,
                                max_steps=args.steps, bf16=args.bf16, report_to=[], save_strategy="no",
                                logging_strategy="no", disable_tqdm=True, seed=1)
    Trainer(model=model, args=options, train_dataset=train, data_collator=collator, callbacks=[Window()]).train()
    window = collator.batches[throughput.WARMUP_STEPS:args.steps]
    rows, tokens, squares, padded = (sum(b[i] for b in window) for i in range(4))
    seconds = marks[args.steps] - marks[throughput.WARMUP_STEPS]
    flops = throughput.training_flops(throughput.model_shape(model), tokens, squares)
    peak = throughput.peak_flops(torch.cuda.get_device_name())
    return {"samples_per_second": rows / seconds, "tokens_per_second": tokens / seconds,
            "padding_efficiency": tokens / padded, "mfu": flops / seconds / peak if peak else None,
            "steps": args.steps - throughput.WARMUP_STEPS, "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "precision": "bf16" if args.bf16 else "fp32", "optimizer": options.optim}


def batch1(args) -> dict:
    import torch

    test, labels = dataset(args.data, "test")
    model = load_model(args.model, labels).cuda().eval()
    rows = [torch.tensor([r["input_ids"]]) for r in test.select(range(min(args.rows, len(test))))]
    with torch.no_grad():
        traced = torch.jit.trace(model, (rows[0].cuda(), torch.ones_like(rows[0]).cuda()), strict=False)
        for ids in rows[:10]:
            traced(ids.cuda(), torch.ones_like(ids).cuda())
        torch.cuda.synchronize()

        def one_pass() -> int:  # each .item() waits for its row, as the original loop did
            for ids in rows:
                traced(ids.cuda(), torch.ones_like(ids).cuda())["logits"].argmax(-1).item()
            return len(rows)

        return {**measure(one_pass, args.min_seconds, args.repeats), "rows": len(rows)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["trainer", "batch1"])
    p.add_argument("--data", type=Path, required=True, help="a prepared dataset folder (steps.prepare)")
    p.add_argument("--model", type=Path, required=True, help="config + tokenizer folder")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--min-seconds", type=float, default=MIN_WINDOW_S, help="each timing window at least this long")
    p.add_argument("--repeats", type=int, default=REPEATS, help="windows; the figure is their median")
    args = p.parse_args()
    print(json.dumps(trainer(args) if args.kind == "trainer" else batch1(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
