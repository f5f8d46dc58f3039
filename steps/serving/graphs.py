"""CUDA graphs of the traced model: a served pass replays recorded kernels instead of issuing them one by one.

Issuing one TorchScript pass costs the CPU a fixed time whatever its size: for a small pass that is the
whole of its time (bench/results/serving-gpu-2026-11-30-cuda-graphs.json).
At warm-up a graph is recorded for every pass shape up to ``tokens``
padded tokens; a pass then replays the graph of its shape: rows rounded up to ``ROW_BUCKETS`` (the extra rows
hold whatever the buffers held: rows do not see each other in an encoder, and their logits are dropped),
width up to its width class (the extra columns are masked padding, as the eager pass pads to a multiple of
8). Larger passes run eagerly: the GPU, not the launches, sets their time.

The graphs share one memory pool, so they replay one at a time, on one stream of their own (eager passes of
other threads run beside them). When recording fails (a trace that reads a value back from the GPU mid-pass
cannot be recorded; out of memory), every pass runs eagerly and ``failed`` says why.
"""

from __future__ import annotations

import atexit
import bisect
import os
import threading

from steps.inference import planner

ROW_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def prepare() -> bool:
    """Whether this host serves with graphs (a GPU, SMPIPE_SERVE_CUDA_GRAPHS not 0); if so, before the trace
    first runs, the executor they need: TorchScript's profiling executor runs BERT's traced ``int(tensor)``
    (the position offset) as a read back from the GPU, which a capture cannot hold; the legacy executor does
    not (H200, torch 2.11: 0 graphs recorded with the profiling executor, every one with the legacy one,
    logits identical to the eager pass's)."""
    import torch

    if os.environ.get("SMPIPE_SERVE_CUDA_GRAPHS", "1") == "0" or not torch.cuda.is_available():
        return False
    torch._C._jit_set_profiling_executor(False)
    return True


class Graphs:
    def __init__(self, module, keys: list[str], pad_id: int, limit: int, tokens: int):
        self.module, self.keys, self.pad_id, self.tokens = module, keys, pad_id, tokens
        self.widths = planner.width_classes(limit)  # sorted: the widest width of each class
        self.graphs: dict = {}
        self.lock = threading.Lock()
        self.failed: str | None = None
        self.stream = self.pool = None

    def shapes(self) -> list[tuple[int, int]]:
        return [(r, w) for w in self.widths for r in ROW_BUCKETS if r * w <= self.tokens]

    def shape(self, rows: int, width: int) -> tuple[int, int] | None:
        """(rows, width) of the graph that runs a pass of this shape, or None when it runs eagerly."""
        r, w = bisect.bisect_left(ROW_BUCKETS, rows), bisect.bisect_left(self.widths, width)
        if r == len(ROW_BUCKETS) or w == len(self.widths) or ROW_BUCKETS[r] * self.widths[w] > self.tokens:
            return None
        return ROW_BUCKETS[r], self.widths[w]

    def record(self) -> None:
        """Every shape's graph (about 500 for BERT-base up to 512 tokens: a few seconds on an H200)."""
        import torch

        self.stream, self.pool = torch.cuda.Stream(), torch.cuda.graph_pool_handle()
        atexit.register(self.close)
        with torch.inference_mode(), torch.jit.optimized_execution(False), torch.cuda.stream(self.stream):
            for shape in self.shapes():
                try:
                    self.graphs[shape] = self._record(shape)
                except RuntimeError as exc:
                    self.failed = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    self.graphs.clear()
                    break
        torch.cuda.synchronize()

    def close(self) -> None:
        """At exit, while CUDA is still up: the buffers and outputs first, then the graphs that own their
        memory pool (the interpreter's teardown would free them in no set order)."""
        import torch

        graphs = [entry[0] for entry in self.graphs.values()]
        self.graphs.clear()  # the buffers and outputs go here, while their graphs (and the pool) still live
        graphs.clear()
        torch.cuda.synchronize()

    def _record(self, shape: tuple[int, int]) -> tuple:
        """One eager pass first, outside the capture: it loads the kernels and sets cuBLAS up for the shape."""
        import torch

        inputs = [torch.full(shape, self.pad_id if key == "input_ids" else 1, dtype=torch.long, device="cuda")
                  for key in self.keys]
        self.module(*inputs)
        graph = torch.cuda.CUDAGraph()
        graph.capture_begin(pool=self.pool, capture_error_mode="thread_local")
        try:
            logits = self.module(*inputs)
        finally:
            graph.capture_end()
        return graph, inputs, logits

    def run(self, tensors: dict):
        """The pass's logits on the device (a copy of its own), by replaying the graph of its shape; None when
        it runs eagerly. ``tensors``: CPU tensors by input key, as TokenMatrix.batch makes them."""
        import torch

        rows, width = tensors[self.keys[0]].shape
        entry = self.graphs.get(self.shape(rows, width))
        if entry is None:
            return None
        graph, inputs, logits = entry
        current = torch.cuda.current_stream()
        with self.lock, torch.cuda.stream(self.stream):
            self.stream.wait_stream(current)
            for key, buffer in zip(self.keys, inputs, strict=True):
                fill = self.pad_id if key == "input_ids" else 0
                buffer[:rows].copy_(torch.nn.functional.pad(tensors[key], (0, buffer.shape[1] - width), value=fill),
                                    non_blocking=True)
            graph.replay()
            out = logits[:rows].clone()  # the next replay of this graph overwrites its output
        current.wait_stream(self.stream)
        out.record_stream(current)
        return out
