"""Where a served batch's time goes on a GPU (a probe, not part of `make bench`).

    python bench/serving_probe.py [OUT.json]    # exports BERT-base (random weights) as bench/serving.py does

Prints, for a few pass shapes (rows x width), the CPU time to issue one eager pass of the TorchScript model,
the time per pass when 20 are issued back to back (GPU time if the GPU is the slower side), and the time per
replay of the same pass captured as a CUDA graph; then documents/s of forward passes over samples of real
windows from 1, 2 and 4 threads, each on its own CUDA stream.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def shapes_report(model, pad_id: int) -> dict:
    import torch

    out = {}
    for rows, width in ((1, 64), (16, 128), (48, 96), (16, 512), (64, 256), (128, 128)):
        ids = torch.full((rows, width), pad_id + 1, dtype=torch.long, device="cuda")
        mask = torch.ones_like(ids)
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            for _ in range(3):
                model.module(ids, mask)
            torch.cuda.synchronize()
            started = time.perf_counter()
            model.module(ids, mask)
            issue = time.perf_counter() - started
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(20):
                model.module(ids, mask)
            torch.cuda.synchronize()
            eager = (time.perf_counter() - started) / 20
            try:
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        model.module(ids, mask)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    model.module(ids, mask)
                graph.replay()
                torch.cuda.synchronize()
                started = time.perf_counter()
                for _ in range(20):
                    graph.replay()
                torch.cuda.synchronize()
                replay = round(1000 * (time.perf_counter() - started) / 20, 3)
            except Exception as exc:  # noqa: BLE001 - report why capture failed
                replay = f"capture failed: {str(exc)[:200]}"
        out[f"{rows}x{width}"] = {"issue_ms": round(1000 * issue, 3), "eager_ms": round(1000 * eager, 3),
                                  "graph_replay_ms": replay}
        print(f"{rows}x{width}: {out[f'{rows}x{width}']}", flush=True)
    return out


def threads_report(model, windows: list, docs: int = 64, seconds: float = 4) -> dict:
    import torch

    from steps.inference.batching import TokenMatrix

    out = {}
    for threads in (1, 2, 4):
        counts, stop = [0] * threads, time.perf_counter() + seconds

        def work(k: int, counts=counts, stop=stop) -> None:
            rng, stream = random.Random(k), torch.cuda.Stream()
            with torch.cuda.stream(stream):
                while time.perf_counter() < stop:
                    model.forward_matrix(TokenMatrix.from_rows([windows[rng.randrange(len(windows))] for _ in range(docs)]))
                    counts[k] += docs

        pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        out[str(threads)] = round(sum(counts) / seconds, 1)
        print(f"{threads} thread(s), {docs} documents per call: {out[str(threads)]} documents/s", flush=True)
    return out


def main() -> int:
    import shutil

    from serving import ROOT, artifact, docs

    from steps.serving.model import Predictor

    work = ROOT / "bench" / "out" / "serving-probe"
    shutil.rmtree(work, ignore_errors=True)
    predictor = Predictor(artifact(work, "bert-base", docs()) / "model")
    predictor.warm_up()
    windows = predictor.encode([r["text"] for r in docs(4096)]).windows
    lengths = sorted(len(w) for w in windows)
    print(f"windows: {len(windows)}, tokens p50 {lengths[len(lengths) // 2]}, mean {sum(lengths) / len(lengths):.0f}")
    result = {"shapes": shapes_report(predictor.model, predictor.pad_id),
              "documents_per_second_by_threads": threads_report(predictor.model, windows)}
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
