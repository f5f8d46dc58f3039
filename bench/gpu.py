"""GPU benchmarks (`make bench`): our training and inference programs against HF Trainer and the original
pipeline's batch-1 TorchScript loop, on the same BERT-base model, data and GPU type.

    python bench/assets.py        # once, on a machine with the venv (makes bench/out/assets)
    python bench/gpu.py [--quick] [--out bench/results]

Cases: ``full128`` / ``full512`` — every input exactly 128 / 512 tokens (batch 64 / 16);
``docs`` — 21,000 real docstrings of 16 packages, up to 512 tokens, our defaults (batch 32).
Training is timed in steady state (after the warm-up steps) for every contender alike. On a host
with two GPUs the contenders run one at a time (``--side-by-side``: ours on GPU 0, the others on GPU 1 at
the same time, sharing the host's CPUs), then ours on both GPUs for the scaling figure. Writes
``<date>-<commit>-<machine>-gpu.json`` and .md under --out (bench/provenance.py), never over an earlier run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.provenance import provenance, result_path  # noqa: E402

ASSETS = ROOT / "bench" / "out" / "assets"
CASES = {  # name: (max_length, batch size per GPU, our steps, Trainer steps)
    "full128": (128, 64, 170, 120),
    "full512": (512, 16, 170, 120),
    "docs": (512, 32, 250, 120),
}
SYNTHETIC_DOCS = 16000


def run(cmd: list[str], gpus: str, log: Path, env: dict | None = None) -> str:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpus, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "WANDB_MODE": "disabled", **(env or {})}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode:
        errors = [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line]
        raise RuntimeError(f"{' '.join(cmd[1:4])} exited {result.returncode}: {' / '.join(errors[-3:])[-1500:]}")
    return result.stdout


def synthetic_rows(vocab: list[str], n: int, words: int = 600) -> list[dict]:
    """Random whole-word vocabulary entries: long enough that every row is truncated to full length."""
    rng = random.Random(0)
    return [{"doc_id": i, "text": " ".join(rng.choices(vocab, k=words)), "label": f"l{rng.randrange(16):02d}"}
            for i in range(n)]


def prepare(work: Path, name: str, rows: list[dict], models: list[str], splits: str) -> Path:
    (work / f"rec-{name}").mkdir(parents=True, exist_ok=True)
    with (work / f"rec-{name}" / "data.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    pre = work / "pretrained"
    for model in models:
        target = pre / model.split(":")[0]
        if not target.exists():
            pre.mkdir(exist_ok=True)
            target.symlink_to(ASSETS / "bert-base")
    out = work / f"prep-{name}"
    cmd = [sys.executable, "-m", "steps.prepare", "--input", str(work / f"rec-{name}"), "--pretrained", str(pre),
           "--output", str(out), "--splits", splits] + [a for m in models for a in ("--model", m)]
    run(cmd, "", work / f"prepare-{name}.log")
    return out


def prepare_all(work: Path) -> dict[str, Path]:
    vocab = [w for w in (ASSETS / "bert-base" / "vocab.txt").read_text(encoding="utf-8").split()
             if w.isalpha() and w.islower()]
    full = prepare(work, "full", synthetic_rows(vocab, SYNTHETIC_DOCS), ["full128:128:head:0:", "full512:512:head:0:"],
                   "0.8,0.02,0.18")
    with gzip.open(ASSETS / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    return {"full128": full, "full512": full, "docs": prepare(work, "docs", docs, ["docs:512:head:0:"], "0.8,0.05,0.15")}


def ours(work: Path, data: dict[str, Path], case: str, gpus: int, steps: int) -> dict:
    opt_ml = work / f"ours-{case}-{gpus}gpu" / "opt" / "ml"
    shutil.rmtree(opt_ml.parent.parent, ignore_errors=True)
    shutil.copytree(data[case] / case, opt_ml / "input/data/train")
    (opt_ml / "input/data").joinpath("pretrained").symlink_to(ASSETS / "bert-base")
    (opt_ml / "input/config").mkdir(parents=True)
    _, batch, _, _ = CASES[case]
    hp = {"epochs": "1", "batch_size": str(batch), "max_steps": str(steps), "init": "random", "learning_rate": "5e-5",
          "model_name": case}
    (opt_ml / "input/config/hyperparameters.json").write_text(json.dumps(hp))
    started = time.perf_counter()
    run([sys.executable, "-m", "steps.launcher", "train"], ",".join(map(str, range(gpus))), opt_ml.parent / "train.log",
        {"SMPIPE_OPT_ML": str(opt_ml), "SM_NUM_GPUS": str(gpus)})
    results = json.loads((opt_ml / "output/data/train_results.json").read_text())
    export = json.loads((opt_ml / "model/export_report.json").read_text())
    return {**results["history"][0]["throughput"], "wall_seconds": time.perf_counter() - started,
            "export": {d: {k: r[k] for k in ("dtype", "max_abs_diff", "tolerance", "prediction_agreement")}
                       for d, r in export["devices"].items()}, "model_dir": str(opt_ml / "model")}


def contender(work: Path, data: dict[str, Path], kind: str, case: str, gpu: str, *extra: str) -> dict:
    _, batch, _, steps = CASES[case]
    cmd = [sys.executable, "bench/contenders.py", kind, "--data", str(data[case] / case), "--model", str(ASSETS / "bert-base"),
           "--batch-size", str(batch), "--steps", str(steps), *extra]
    started = time.perf_counter()
    out = run(cmd, gpu, work / "logs" / f"{kind}-{case}{''.join(extra)}.log")
    return {**json.loads(out.strip().splitlines()[-1]), "wall_seconds": time.perf_counter() - started}


def evaluate(work: Path, data: dict[str, Path], case: str, gpu: str, model_dir: str) -> dict:
    """Our batched inference over the case's test split, in windows of at least 10 s (bench/inference.py)."""
    out = run([sys.executable, "bench/inference.py", "--model-dir", model_dir, "--data", str(data[case] / case)], gpu,
              work / "logs" / f"infer-{case}.log")
    return json.loads(out.strip().splitlines()[-1])


LOCK = threading.Lock()
SAVE = {}  # out dir and environment: the report is rewritten after every measurement


def attempt(results: dict, key: str, fn, *args) -> None:
    """One measurement; a failure is recorded (and fails the run at the end), the others go on."""
    if SAVE.get("only") and not key.startswith(tuple(SAVE["only"])):
        return
    print(f"bench: {key} …", flush=True)
    try:
        value = fn(*args)
        print(f"bench: {key} {json.dumps({k: v for k, v in value.items() if k != 'export'})}", flush=True)
    except Exception as exc:  # noqa: BLE001 - recorded in the report
        value = {"error": str(exc)[-2000:]}
        print(f"bench: {key} FAILED {exc}", flush=True)
    with LOCK:
        results[key] = value
        if SAVE:  # a run cut short still leaves every figure measured so far
            report.write(SAVE["out"], SAVE["env"], results, report.summarise(results), CASES)


def our_queue(work, data, results, quick: bool) -> None:
    for case in ("full128", "docs", "full512"):
        attempt(results, f"train/ours/{case}/1gpu", ours, work, data, case, 1, 40 if quick else CASES[case][2])
        # Inference speed does not depend on the weights: any BERT-base export of ours will do.
        model_dir = next((r["model_dir"] for k, r in results.items() if k.startswith("train/ours/") and "model_dir" in r),
                         None)
        if model_dir and case != "full512":
            attempt(results, f"infer/ours/{case}", evaluate, work, data, case, "0", model_dir)


def their_queue(work, data, results, gpu: str) -> None:
    for case in ("full128", "full512"):
        attempt(results, f"train/trainer-bf16/{case}", contender, work, data, "trainer", case, gpu, "--bf16")
    attempt(results, "train/trainer-defaults/docs", contender, work, data, "trainer", "docs", gpu)
    attempt(results, "train/trainer-bf16/docs", contender, work, data, "trainer", "docs", gpu, "--bf16")
    for case in ("full128", "docs"):
        attempt(results, f"infer/batch1/{case}", contender, work, data, "batch1", case, gpu)


def environment() -> dict:
    import accelerate
    import torch
    import transformers

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"gpus": gpus, "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "accelerate": accelerate.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "date": datetime.now(UTC).isoformat(timespec="seconds")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "work")
    p.add_argument("--quick", action="store_true", help="few steps: a check that everything runs, not figures")
    p.add_argument("--side-by-side", action="store_true",
                   help="on two GPUs, run the contenders at the same time as ours (faster, but they share the CPUs)")
    p.add_argument("--only", default="", help="comma-separated result-name prefixes to run, e.g. train/ours,infer/")
    p.add_argument("--tag", default="", help="suffix of the result file name")
    args = p.parse_args()
    if not (ASSETS / "docs.jsonl.gz").is_file():
        print(f"bench: {ASSETS} is missing: run `python bench/assets.py` on a machine with the venv", file=sys.stderr)
        return 2
    env = environment()
    if not env["gpus"]:
        print("bench: no CUDA GPU here; `make bench-cpu` is the CPU benchmark", file=sys.stderr)
        return 2
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    started, results = time.perf_counter(), {}
    env.update(side_by_side=len(env["gpus"]) >= 2 and args.side_by_side, quick=args.quick)
    env.update(provenance(), result=str(result_path(f"gpu{'-' + args.tag if args.tag else ''}", args.out)))
    SAVE.update(out=args.out, env=env, only=[k for k in args.only.split(",") if k])
    env["tag"] = args.tag
    data = prepare_all(args.work)
    two = len(env["gpus"]) >= 2
    side_by_side = env["side_by_side"]
    if side_by_side:
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(our_queue, args.work, data, results, args.quick),
                    pool.submit(their_queue, args.work, data, results, "1")]
            for job in jobs:
                job.result()
    else:
        our_queue(args.work, data, results, args.quick)
        their_queue(args.work, data, results, "0")
    if two:
        for case in ("full128", "docs"):
            steps = CASES[case][2] // 2 if not args.quick else 30
            attempt(results, f"train/ours/{case}/2gpu", ours, args.work, data, case, 2, steps)
    env["seconds"] = time.perf_counter() - started
    summary = report.summarise(results)
    out = report.write(args.out, env, results, summary, CASES)
    print(out.with_suffix(".md").read_text(encoding="utf-8"))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
