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
import contextlib
import gc
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
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
    net = AutoModelForSequenceClassification.from_pretrained(str(MODELS[model]), num_labels=len(labels),
                                                             ignore_mismatched_sizes=True) \
        if (MODELS[model] / "model.safetensors").is_file() else AutoModelForSequenceClassification.from_config(
            __import__("transformers").AutoConfig.from_pretrained(str(MODELS[model]), num_labels=len(labels)))
    for folder in (model_dir / "hf", work / "peer"):  # the peer's own copy (bench/serving_peer.py)
        net.save_pretrained(str(folder))
        AutoTokenizer.from_pretrained(str(MODELS[model])).save_pretrained(str(folder))
    shutil.copy(work / "prep" / "m" / "model.json", model_dir / "prepare_model.json")
    run([sys.executable, "-m", "steps.export", "--model-dir", str(model_dir), "--data-dir", str(work / "prep" / "m")])
    return work / "opt" / "ml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client_loop(port: int, bodies: list[bytes], stop_at: float, measure_from: float, out: list) -> None:
    """One keep-alive HTTP/1.1 connection sending requests back to back (raw asyncio streams: a Python HTTP
    client library costs more per request than the server under test)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    while time.perf_counter() < stop_at:
        body = bodies[i % len(bodies)]
        started = time.perf_counter()
        writer.write(b"POST /invocations HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        if started >= measure_from:
            out.append((time.perf_counter() - started, head.startswith(b"HTTP/1.1 200")))
        i += 1
    writer.close()


def _client_process(port: int, bodies: list[bytes], connections: int, stop_at: float, measure_from: float, queue) -> None:
    gc.freeze()  # forked from a process that imported torch: its full collections would stall the clients
    async def run() -> list:
        out: list = []
        await asyncio.gather(*(_client_loop(port, bodies[k::connections] or bodies, stop_at, measure_from, out)
                               for k in range(connections)))
        return out

    try:  # the clients' own event loop costs less with uvloop (installed with the server)
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    queue.put(run_loop(run()))


def load(port: int, texts: list[str], clients: int, seconds: float, warmup: float) -> dict:
    """``clients`` concurrent connections spread over several client processes (time.perf_counter is
    system-wide on Linux, so the processes share one clock)."""
    import multiprocessing

    processes = max(1, min(8, clients // 8))
    bodies = [json.dumps({"inputs": t}).encode() for t in texts]
    measure_from = time.perf_counter() + warmup + 1
    stop_at = measure_from + seconds
    queue = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(
        target=_client_process, args=(port, bodies[k::processes], clients // processes, stop_at, measure_from, queue))
        for k in range(processes)]
    for w in workers:
        w.start()
    samples = [s for _ in workers for s in queue.get()]
    for w in workers:
        w.join()
    latencies = sorted(t for t, ok in samples if ok)
    return {"requests": len(latencies), "errors": sum(1 for _, ok in samples if not ok),
            "requests_per_second": len(latencies) / seconds, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def forward_profile(model_dir: Path, texts: list[str]) -> dict:
    """Milliseconds of one encode + forward + predictions call by number of documents: the model's own cost."""
    sys.path.insert(0, str(ROOT))
    from steps.serving.model import Predictor

    predictor, out = Predictor(model_dir), {}
    predictor.warm_up()
    for n in (1, 8, 32, 128):
        for _ in range(3):
            predictor.predict(texts[:n])
        started, repeats = time.perf_counter(), 20
        for k in range(repeats):
            predictor.predict(texts[k * n % 1000:k * n % 1000 + n])
        out[str(n)] = round(1000 * (time.perf_counter() - started) / repeats, 2)
    return out


def offline(model_dir: Path, texts: list[str], seconds: float = 10, repeats: int = 3, chunk: int = 512) -> dict:
    """The limit serving is measured against: our batched inference of the same documents in this process,
    ``chunk`` documents per call, with no HTTP and no waiting for requests; documents/s over ``repeats``
    windows of at least ``seconds``, median. Twice: from the texts (one process tokenizes, as a batch job
    would), and from documents encoded beforehand (the GPU's own rate: no tokenizing, no parsing)."""
    from steps.serving.model import Predictor

    predictor = Predictor(model_dir)
    predictor.warm_up()
    chunks = [[texts[(k + i) % len(texts)] for i in range(chunk)] for k in range(0, len(texts), chunk)]
    encoded = [predictor.encode(c) for c in chunks]
    out = {}
    for name, call, inputs in (("from_texts", predictor.predict, chunks),
                               ("encoded_beforehand", predictor.predict_encoded, encoded)):
        call(inputs[0])
        rates = []
        for _ in range(repeats):
            done, started, k = 0, time.perf_counter(), 0
            while time.perf_counter() - started < seconds:
                done += len(call(inputs[k % len(inputs)]))
                k += 1
            rates.append(done / (time.perf_counter() - started))
        out[name] = {"documents_per_second": round(statistics.median(rates), 1),
                     "spread": [round(min(rates), 1), round(max(rates), 1)]}
    return {**out, "documents_per_second": out["encoded_beforehand"]["documents_per_second"], "window_s": seconds,
            "chunk": chunk}


def peer(work: Path, texts: list[str], clients: int, seconds: float) -> dict:
    """bench/serving_peer.py under the same load: a transformers.pipeline behind FastAPI."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath(), "PEER_MODEL": str(work / "peer"),
           "PEER_DEVICE": "cuda" if __import__("torch").cuda.is_available() else "cpu"}
    cmd = [sys.executable, "-m", "uvicorn", "bench.serving_peer:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning"]
    with serving(cmd, env, work / f"peer-{clients}.log", port, 1):
        return load(port, texts, clients, seconds, warmup=3) | {"batches_served": None}


@contextlib.contextmanager
def serving(cmd: list[str], env: dict, log: Path, port: int, workers: int, cwd: Path = ROOT):
    """A server process until every one of its ``workers`` answers /ping; its output in ``log``, shown when it
    dies or never answers (a benchmark must say why, not time out on refused connections)."""
    import httpx

    with log.open("w") as out:
        server = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        ready, deadline = set(), time.monotonic() + 180
        while len(ready) < workers:  # every worker, not the first one up: connections opened before a worker
            if server.poll() is not None or time.monotonic() > deadline:  # listens all go to the others
                raise SystemExit(f"{' '.join(cmd[2:4])} did not serve (exit {server.poll()}):\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
            try:
                ready.add(httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).json()["worker"])
            except httpx.HTTPError:
                time.sleep(0.3)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def in_process(model_dir: Path, texts: list[str], clients: int, seconds: float = 5) -> dict:
    """The batcher without HTTP: requests/s with one request per pass and with dynamic batching."""
    from steps.serving.batcher import Batcher
    from steps.serving.model import Predictor

    predictor, out = Predictor(model_dir), {}
    predictor.warm_up()

    async def drive(max_requests: int) -> float:
        os.environ["SMPIPE_SERVE_MAX_REQUESTS"] = str(max_requests)
        batcher, done, stop = Batcher(predictor), [0], time.perf_counter() + seconds
        batcher.start()

        async def client(k: int) -> None:
            while time.perf_counter() < stop:
                await batcher.predict([texts[(k + done[0]) % len(texts)]])
                done[0] += 1

        await asyncio.gather(*(client(k) for k in range(clients)))
        await batcher.stop()
        return done[0] / seconds

    for mode, max_requests in (("one-at-a-time", 1), ("batched", 1024)):
        out[mode] = round(asyncio.run(drive(max_requests)), 1)
    os.environ.pop("SMPIPE_SERVE_MAX_REQUESTS", None)
    return out


def measure(opt_ml: Path, texts: list[str], clients: int, seconds: float, batching: bool, workers: int = 1,
            settings: dict | None = None, root: Path = ROOT) -> dict:
    """``root``: the checkout whose serving program runs (another one gives a before/after in one run)."""
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "SMPIPE_OPT_ML": str(opt_ml), "SMPIPE_SERVE_HOST": "127.0.0.1",
           "SAGEMAKER_BIND_TO_PORT": str(port), "SMPIPE_SERVE_MAX_REQUESTS": "1024" if batching else "1",
           "SMPIPE_SERVE_WORKERS": str(workers), **(settings or {})}
    log = opt_ml.parent / f"serve-{clients}-{int(batching)}-{workers}.log"
    with serving([sys.executable, "-m", "steps.launcher", "serve"], env, log, port, workers, cwd=root):
        result = load(port, texts, clients, seconds, warmup=3)
        result["batches_served"] = httpx.get(f"http://127.0.0.1:{port}/ping").json()["batches"]  # one worker's
        return result


def combinations(assignments: list[str]) -> list[dict]:
    """["A=1,2", "B=3"] -> [{"A": "1", "B": "3"}, {"A": "2", "B": "3"}]."""
    import itertools

    names = [a.split("=", 1)[0] for a in assignments]
    values = [a.split("=", 1)[1].split(",") for a in assignments]
    return [dict(zip(names, chosen, strict=True)) for chosen in itertools.product(*values)]


def targets(results: dict, offline_rate: float, clients: list[int]) -> dict:
    """#30's serving targets from one run: saturation against the offline limit, p99 at 64 clients, the peer."""
    ours = {c: results[f"batched, {c} clients"] for c in clients}
    out = {"saturation_over_offline": round(max(r["requests_per_second"] for r in ours.values()) / offline_rate, 3),
           "p99_ms_at_64_clients": round(ours[64]["p99_ms"], 1) if 64 in ours else None}
    for c in clients:
        other = results.get(f"peer, {c} clients")
        if other and other["requests_per_second"]:
            out[f"over_peer_at_{c}_clients"] = round(ours[c]["requests_per_second"] / other["requests_per_second"], 1)
            out[f"p99_not_worse_than_peer_at_{c}_clients"] = ours[c]["p99_ms"] <= other["p99_ms"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="64,256", help="concurrent clients, comma-separated (the first also "
                   "measures one request at a time and the worker variants)")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--model", choices=sorted(MODELS), default="minilm")
    p.add_argument("--workers", default="", help="server processes for the batched runs, comma-separated "
                   "(default: the server's own choice)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2",
                   help="a serving setting to vary over the several-worker runs, e.g. SMPIPE_SERVE_MODEL_THREADS=2,4 "
                   "(repeatable; every combination is measured; with --only-batched, over the default server at the "
                   "first --clients)")
    p.add_argument("--no-peer", action="store_true", help="skip the transformers.pipeline + FastAPI peer")
    p.add_argument("--before", type=Path, help="another checkout (e.g. `git worktree add` of an earlier commit): its "
                   "server is measured too, at the first --clients, on the same artifact")
    p.add_argument("--only-batched", action="store_true", help="only the limit and the server as it starts (its "
                   "default workers) at each --clients; no profile, no one-at-a-time, no worker variants")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "serving")
    args = p.parse_args()
    import torch

    shutil.rmtree(args.work, ignore_errors=True)
    rows = docs()
    opt_ml = artifact(args.work, args.model, rows)
    texts = [r["text"] for r in rows]
    sys.path.insert(0, str(ROOT))
    from bench.provenance import provenance, result_path
    from steps.serving.app import default_workers

    clients = [int(c) for c in args.clients.split(",")]
    workers = [int(n) for n in args.workers.split(",") if n.strip()] or [default_workers()]
    default = default_workers()
    profile, inproc, limit = {}, {}, offline(opt_ml / "model", texts)
    print(f"offline batched inference (the limit): {limit}", flush=True)
    modes = {f"batched, {c} clients": (c, True, default, {}) for c in clients}  # the server as it starts
    for settings in (s for s in combinations(args.set) if args.only_batched and s):
        label = "".join(f", {k.removeprefix('SMPIPE_SERVE_').lower()}={v}" for k, v in settings.items())
        modes[f"batched, {clients[0]} clients{label}"] = (clients[0], True, default, settings)
    if not args.only_batched:
        profile = forward_profile(opt_ml / "model", texts)
        print(f"encode + forward + predictions, ms by documents per call: {profile}", flush=True)
        inproc = in_process(opt_ml / "model", texts, clients[0])
        print(f"batcher without HTTP, requests/s: {inproc}", flush=True)
        modes |= {"one-at-a-time": (clients[0], False, 1, {}), "batched, 1 worker": (clients[0], True, 1, {})}
        for n in (n for n in workers if n not in (1, default)):
            for settings in combinations(args.set):
                label = "".join(f", {k.removeprefix('SMPIPE_SERVE_').lower()}={v}" for k, v in settings.items())
                modes[f"batched, {n} workers{label}"] = (clients[0], True, n, settings)
    results = {}
    for mode, (c, batching, n, settings) in modes.items():
        results[mode] = measure(opt_ml, texts, c, args.seconds, batching, n, settings) | {"clients": c}
    if args.before:
        results[f"before, {clients[0]} clients"] = measure(opt_ml, texts, clients[0], args.seconds, True, default,
                                                           root=args.before.resolve()) | {"clients": clients[0]}
    if not args.no_peer:
        for c in clients:
            results[f"peer, {c} clients"] = peer(args.work, texts, c, args.seconds) | {"clients": c}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    best = max(r["requests_per_second"] for m, r in results.items() if m.startswith("batched"))
    ratio = best / results["one-at-a-time"]["requests_per_second"] if "one-at-a-time" in results else None
    summary = {**provenance(), "device": device, "model": args.model, "clients": clients, "seconds": args.seconds,
               "default_workers": default, "before": {"path": str(args.before),
               "commit": os.environ.get("SMPIPE_BEFORE_COMMIT")} if args.before else None,
               "torch": torch.__version__, "results": results, "offline": limit,
               "targets": targets(results, limit["documents_per_second"], clients),
               "forward_ms_by_documents": profile, "in_process_requests_per_second": inproc,
               "throughput_ratio": ratio}
    path = result_path(f"serving-{'gpu' if torch.cuda.is_available() else 'cpu'}-{args.model}", args.out)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    for mode, r in results.items():
        served = "" if r["batches_served"] is None else f", {r['batches_served']} forward passes"
        print(f"{mode:>50}: {r['requests_per_second']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
              f"  ({r['requests']} requests{served}, {r['errors']} errors)")
    print(f"targets: {summary['targets']} (offline {limit['documents_per_second']:.1f} documents/s)")
    print(f"serving on {device} → {path}" + (f": {ratio:.1f}x one request at a time" if ratio else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
