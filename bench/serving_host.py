"""The serving process's own cost, without a model: one serving process (uvicorn, the app, the batcher, the
tokenizer, the windowing) in front of a model that answers at once, under bench/serving.py's clients. No GPU.

    python bench/serving_host.py [--clients 64] [--seconds 8] [--repeats 3]

Requests/s one serving process answers and the CPU it spends per request: what bounds a GPU server's
throughput once the model is fast (steps/serving/workers.py runs several such processes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import serving  # noqa: E402
from bench.serving_where import cpu_seconds  # noqa: E402


class ZeroModel:
    """The model process's interface (steps/serving/engine.py), answering equal logits at once."""

    device, rows, concurrency = "cuda", 512, 8

    def __init__(self, labels: int):
        self.labels = labels

    def warm_up(self) -> None:
        pass

    def forward(self, windows):
        import numpy as np

        return np.zeros((len(windows), self.labels), dtype=np.float32)


def model_dir(work: Path, rows: list[dict]) -> Path:
    """labels.json, the training's windowing and the tokenizer: what the serving process reads."""
    out = work / "model"
    shutil.rmtree(out, ignore_errors=True)
    (out / "hf").mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (serving.MODELS["bert-base"] / name).is_file():
            shutil.copy(serving.MODELS["bert-base"] / name, out / "hf" / name)
    (out / "labels.json").write_text(json.dumps({"labels": sorted({r["label"] for r in rows})}))
    (out / "prepare_model.json").write_text(json.dumps({"max_length": 512, "long_documents": "head"}))
    return out


def _serve(directory: str, port: int, labels: int) -> None:
    import uvicorn

    from steps.serving.app import create_app
    from steps.serving.workers import listening_socket

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as in a serving process beside others
    app = create_app(Path(directory), 0.0, ZeroModel(labels))
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening_socket("127.0.0.1", port)])


def measure(directory: Path, texts: list[str], labels: int, clients: int, seconds: float) -> dict:
    import httpx

    port = serving.free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(str(directory), port, labels))
    process.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except httpx.HTTPError:
                if not process.is_alive() or time.monotonic() > deadline:
                    raise SystemExit("the serving process did not start") from None
                time.sleep(0.2)
        before, started = cpu_seconds(process.pid), time.perf_counter()
        result = serving.load(port, texts, clients, seconds, warmup=1)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(process.pid) - before
    finally:
        process.terminate()
        process.join(timeout=30)
    rate = result["requests_per_second"]
    return {**result, "server_cpu_per_wall_second": round(cpu / wall, 2),
            "server_cpu_us_per_request": round(1e6 * cpu / max(1.0, rate * wall), 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "serving-host")
    args = p.parse_args()
    from bench.provenance import provenance, result_path

    rows = serving.docs()
    directory, texts = model_dir(args.work, rows), [r["text"] for r in rows]
    labels = len({r["label"] for r in rows})
    runs = [measure(directory, texts, labels, args.clients, args.seconds) for _ in range(args.repeats)]
    median = {key: statistics.median(r[key] for r in runs)
              for key in ("requests_per_second", "server_cpu_us_per_request", "p50_ms", "p99_ms")}
    result = {**provenance(), "clients": args.clients, "seconds": args.seconds, "median": median, "runs": runs,
              "note": "the clients run on the same machine as the serving process"}
    path = result_path("serving-host", args.out)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(median), f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
