"""Serving benchmark (part of `make bench`, and `make bench-serving` alone): the serving program under
concurrent load, with dynamic batching and with one request per forward pass, on the same model.

    python bench/serving.py [--clients 64] [--seconds 15] [--model minilm|bert-base] [--out bench/results]

Single-document requests of real docstrings (bench/out/assets/docs.jsonl.gz) from --clients concurrent
clients (httpx, asyncio) for --seconds after a warm-up; requests/s and p50/p99 latency per mode. The model
artifact is exported by our own export program (TorchScript; the bf16 CUDA trace on a GPU).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "bench" / "out" / "assets"
MODELS = {"minilm": ROOT / ".models" / "all-MiniLM-L6-v2", "bert-base": ASSETS / "bert-base"}


def docs(limit: int = 5000) -> list[dict]:
    with gzip.open(ASSETS / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(limit), fh, strict=False)]


def pythonpath() -> str:
    return os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


def run(cmd: list[str], **env) -> None:
    full = {**os.environ, "PYTHONPATH": pythonpath(), "WANDB_MODE": "disabled", **env}
    result = subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd[2:4])} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def artifact(work: Path, model: str, rows: list[dict]) -> Path:
    """hf/ from the pretrained (or random) weights with a 16-label head, exported like a training job does."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labels = sorted({r["label"] for r in rows})
    (work / "rec").mkdir(parents=True, exist_ok=True)
    (work / "rec" / "data.jsonl").write_text("".join(json.dumps({"doc_id": i, **r}) + "\n" for i, r in enumerate(rows)))
    (work / "pre").mkdir(exist_ok=True)
    (work / "pre" / "m").symlink_to(MODELS[model])
    run([sys.executable, "-m", "steps.prepare", "--input", str(work / "rec"), "--pretrained", str(work / "pre"),
         "--output", str(work / "prep"), "--model", "m:512:head:0:", "--splits", "0.8,0.1,0.1"])
    model_dir = work / "opt" / "ml" / "model"
    net = AutoModelForSequenceClassification.from_pretrained(str(MODELS[model]), num_labels=len(labels)) \
        if (MODELS[model] / "model.safetensors").is_file() else AutoModelForSequenceClassification.from_config(
            __import__("transformers").AutoConfig.from_pretrained(str(MODELS[model]), num_labels=len(labels)))
    net.save_pretrained(str(model_dir / "hf"))
    AutoTokenizer.from_pretrained(str(MODELS[model])).save_pretrained(str(model_dir / "hf"))
    shutil.copy(work / "prep" / "m" / "model.json", model_dir / "prepare_model.json")
    run([sys.executable, "-m", "steps.export", "--model-dir", str(model_dir), "--data-dir", str(work / "prep" / "m")])
    return work / "opt" / "ml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(port: int, texts: list[str], clients: int, seconds: float, warmup: float) -> dict:
    import httpx

    latencies, errors, stop_at = [], [0], time.perf_counter() + warmup + seconds
    measure_from = time.perf_counter() + warmup
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120) as client:
        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                response = await client.post("/invocations", json={"inputs": texts[i % len(texts)]})
                done = time.perf_counter()
                if response.status_code != 200:
                    errors[0] += 1
                elif started >= measure_from:
                    latencies.append(done - started)
                i += clients

        await asyncio.gather(*(worker(k) for k in range(clients)))
    latencies.sort()
    return {"requests": len(latencies), "errors": errors[0], "requests_per_second": len(latencies) / seconds,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def measure(opt_ml: Path, texts: list[str], clients: int, seconds: float, batching: bool) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath(), "SMPIPE_OPT_ML": str(opt_ml), "SMPIPE_SERVE_HOST": "127.0.0.1",
           "SAGEMAKER_BIND_TO_PORT": str(port), "SMPIPE_SERVE_MAX_REQUESTS": "1024" if batching else "1"}
    server = subprocess.Popen([sys.executable, "-m", "steps.launcher", "serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        result = asyncio.run(load(port, texts, clients, seconds, warmup=3))
        result["batches_served"] = httpx.get(f"http://127.0.0.1:{port}/ping").json()["batches"]
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--model", choices=sorted(MODELS), default="minilm")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "serving")
    args = p.parse_args()
    import torch

    shutil.rmtree(args.work, ignore_errors=True)
    rows = docs()
    opt_ml = artifact(args.work, args.model, rows)
    texts = [r["text"] for r in rows]
    results = {mode: measure(opt_ml, texts, args.clients, args.seconds, mode == "batched")
               for mode in ("one-at-a-time", "batched")}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    ratio = results["batched"]["requests_per_second"] / results["one-at-a-time"]["requests_per_second"]
    summary = {"device": device, "model": args.model, "clients": args.clients, "seconds": args.seconds,
               "torch": torch.__version__, "python": platform.python_version(), "results": results,
               "throughput_ratio": ratio, "date": datetime.now(UTC).isoformat(timespec="seconds")}
    args.out.mkdir(parents=True, exist_ok=True)
    kind = "gpu" if torch.cuda.is_available() else "cpu"
    path = args.out / f"serving-{kind}-{datetime.now(UTC):%Y-%m-%d}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    for mode, r in results.items():
        print(f"{mode:>14}: {r['requests_per_second']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
              f"  ({r['requests']} requests, {r['batches_served']} forward passes, {r['errors']} errors)")
    print(f"batching: {ratio:.1f}x the throughput of one request at a time on {device} → {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
