"""Long-document benchmark (`make bench-long`): documents of 10k to 500k characters through prepare and one
training epoch with each strategy, on this machine. What it shows: the rows a strategy makes, that sliding
windows with max_windows keep an epoch bounded by documents x cap, and what each costs in seconds.

    python bench/long_documents.py [--documents 60] [--out bench/results]

Documents are real docstrings (bench/out/assets/docs.jsonl.gz) of one package concatenated until each reaches
its drawn length (log-uniform, 10k to 500k characters), labelled by the package. Model: all-MiniLM-L6-v2 with
max_length 128 (`make model`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "bench" / "out" / "assets"
MODEL = ROOT / ".models" / "all-MiniLM-L6-v2"
STRATEGIES = {"head": "head:128:head:0::8:mean", "headtail": "headtail:128:head+tail:0::8:mean",
              "sliding": "sliding:128:sliding:32::8:mean", "sliding-all": "slidingall:128:sliding:32::0:mean"}


def corpus(documents: int, seed: int = 0) -> list[dict]:
    with gzip.open(ASSETS / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
        by_label = defaultdict(list)
        for line in fh:
            row = json.loads(line)
            by_label[row["label"]].append(row["text"])
    rng, labels, rows = random.Random(seed), sorted(by_label)[:4], []
    for i in range(documents):
        label = labels[i % len(labels)]
        target = int(math.exp(rng.uniform(math.log(10_000), math.log(500_000))))
        parts, size = [], 0
        while size < target:
            parts.append(rng.choice(by_label[label]))
            size += len(parts[-1]) + 2
        rows.append({"doc_id": i, "text": "\n\n".join(parts)[:target], "label": label})
    return rows


def run(cmd: list[str], log: Path, **extra: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "SMPIPE_PROGRESS_S": "10", **extra}
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    log.write_text(result.stdout + result.stderr)
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd[2:4])} failed; see {log}")
    return time.perf_counter() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--documents", type=int, default=60)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "long")
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / "rec").mkdir(parents=True)
    rows = corpus(args.documents)
    (args.work / "rec" / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (args.work / "pre").mkdir()
    for spec in STRATEGIES.values():
        (args.work / "pre" / spec.split(":")[0]).symlink_to(MODEL)
    cmd = [sys.executable, "-m", "steps.prepare", "--input", str(args.work / "rec"), "--pretrained",
           str(args.work / "pre"), "--output", str(args.work / "prep"), "--splits", "0.7,0.15,0.15"]
    results = {"prepare_s": run(cmd + [a for s in STRATEGIES.values() for a in ("--model", s)], args.work / "prepare.log")}
    stats = json.loads((args.work / "prep" / "prepare_results.json").read_text())["models"]
    for name, spec in STRATEGIES.items():
        model = spec.split(":")[0]
        opt_ml = args.work / f"train-{model}" / "opt" / "ml"
        shutil.copytree(args.work / "prep" / model, opt_ml / "input/data/train")
        (opt_ml / "input/data/pretrained").symlink_to(MODEL)
        (opt_ml / "input/config").mkdir(parents=True)
        (opt_ml / "input/config/hyperparameters.json").write_text(json.dumps(
            {"epochs": "1", "batch_size": "32", "model_name": model, "learning_rate": "1e-4"}))
        seconds = run([sys.executable, "-m", "steps.train"], args.work / f"train-{model}.log", SMPIPE_OPT_ML=str(opt_ml)) \
            if name != "sliding-all" else None  # every window of every document: shown, not trained
        s = stats[model]
        results[name] = {"rows": s["rows"], "windows_per_document": s["windows_per_document"],
                         "training_rows_per_epoch": s["training_rows_per_epoch"], "train_epoch_s": seconds,
                         "bound_holds": s["training_rows_per_epoch"] <= s["max_windows"] * (
                             s["documents"]) if s["max_windows"] else None}
    chars = sum(len(r["text"]) for r in rows)
    summary = {"documents": len(rows), "characters": chars, "median_characters": sorted(len(r["text"]) for r in rows)[
        len(rows) // 2], "cpus": os.cpu_count(), "python": platform.python_version(), "results": results,
        "date": datetime.now(UTC).isoformat(timespec="seconds")}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"long-documents-{datetime.now(UTC):%Y-%m-%d}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
