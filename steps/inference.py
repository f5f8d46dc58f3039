"""Batched inference of an exported TorchScript model: length-sorted, token-budget batches.

Rows are sorted by length so a batch holds rows of about the same length (little padding); each
batch holds up to ``tokens`` padded tokens, so short rows go in large batches and long rows in
small ones. Padding is vectorised over one flat token array; on GPU the next batch is built into
pinned memory on a second thread while the current one runs, copies are asynchronous and logits
stay on the device until the end.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from steps import contract
from steps.batching import TokenMatrix
from steps.common import StepError
from steps.progress import Progress

BUDGET = {"cuda": (65536, 4096), "cpu": (8192, 64)}  # (padded tokens, rows) per batch
MULTIPLE = 8


def load(model_dir: Path):
    """(module, device, input keys): the CUDA trace on a GPU host when the export wrote one."""
    import torch

    device = "cuda" if torch.cuda.is_available() and (model_dir / "model.cuda.pt").is_file() else "cpu"
    if device == "cuda":
        # cuDNN's attention builds a plan for every new input shape (about 6 ms per layer, measured on an
        # H200); token-budget batches all differ in shape, so the memory-efficient kernel serves them instead.
        torch.backends.cuda.enable_cudnn_sdp(False)
    name = "model.cuda.pt" if device == "cuda" else "model.pt"
    try:
        module = torch.jit.load(str(model_dir / name), map_location=device).eval()
    except (RuntimeError, ValueError, OSError) as exc:  # missing, truncated or not TorchScript
        reason = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StepError(f"{model_dir / name} cannot be loaded ({reason}): the artifact is damaged or was not "
                        "written by steps.export; export the model again") from None
    keys = contract.read_json(model_dir / "input_keys.json", {"keys": ["input_ids", "attention_mask"]})["keys"]
    unknown = sorted(set(keys) - {"input_ids", "attention_mask"})
    if unknown:
        raise StepError(f"{model_dir}/input_keys.json asks for {unknown}: batched inference builds only "
                        "input_ids and attention_mask")
    return module, device, keys


def plan(lengths, tokens: int, rows: int, overhead: int = 0) -> list[list[int]]:
    """Index batches over rows sorted by length, each within the token and row budgets.

    ``overhead`` is the fixed cost of one forward pass in padded tokens (kernel launches on a GPU). With it,
    sorted rows are first cut where padding the shorter ones to a longer width would cost more than another
    pass: a served batch of one 512-token and 63 short documents becomes two passes, not 64 rows of 512."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    segments = _segments(order, lengths, tokens, rows, overhead) if overhead > 0 and order else [order]
    return [batch for segment in segments for batch in _fill(segment, lengths, tokens, rows)]


def _width(length: int) -> int:
    return -(-int(length) // MULTIPLE) * MULTIPLE


def _fill(order: list[int], lengths, tokens: int, rows: int) -> list[list[int]]:
    batches, current = [], []
    for i in order:
        width = _width(lengths[i])  # the longest so far: rows are sorted
        if current and ((len(current) + 1) * width > tokens or len(current) >= rows):
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else [])


def _width_class(width: int) -> int:
    """Widths that differ by less than 1/16 share a class (at most ~50 classes up to 512, ~100 to 8192)."""
    shift = max(0, width.bit_length() - 5)
    return width >> shift << shift


def width_classes(limit: int) -> list[int]:
    """The widest width of every class up to ``limit``: one pass at each meets every kernel shape class."""
    widths = range(MULTIPLE, _width(limit) + 1, MULTIPLE)
    return sorted({_width_class(w): min(w, limit) for w in widths}.values())


def _segments(order: list[int], lengths, tokens: int, rows: int, overhead: int) -> list[list[int]]:
    """Sorted rows cut into runs of width classes at the least padded tokens plus ``overhead`` per pass
    (dynamic programming over the classes: quadratic in their number, which is small)."""
    widths = [_width(lengths[i]) for i in order]
    ends = [k + 1 for k in range(len(order))
            if k + 1 == len(order) or _width_class(widths[k + 1]) != _width_class(widths[k])]
    starts = [0, *ends[:-1]]
    best, cut = [0], [0]  # best[j]: cost of the first j classes; cut[j]: where its last run starts
    for end in ends:
        width = widths[end - 1]
        per_pass = max(1, min(rows, tokens // width))  # rows that _fill puts in one pass at most this wide
        cost, start = min((best[i] + (n := end - starts[i]) * width + overhead * -(-n // per_pass), i)
                          for i in range(len(best)))
        best.append(cost)
        cut.append(start)
    segments, j = [], len(ends)
    while j:
        segments.append(order[starts[cut[j]]:ends[j - 1]])
        j = cut[j]
    return segments[::-1]


def predict(model_dir: Path, dataset, pad_id: int, tokens: int = 0) -> tuple:
    """Logits for every row of ``dataset`` (a datasets.Dataset with input_ids), in row order, and the
    rows/s of the timed pass (after one untimed call on the first and on the longest batch).

    TorchScript's optimising executor re-specialises (and compiles fused kernels) for each new input
    shape; token-budget batches all differ in shape, so the graph runs as traced, unspecialised."""
    import numpy as np
    import torch

    module, device, keys = load(model_dir)
    matrix = TokenMatrix.from_dataset(dataset)
    budget_tokens, budget_rows = BUDGET[device]
    batches = plan(matrix.lengths, tokens or budget_tokens, budget_rows)

    def tensors(idx):
        batch = matrix.batch(idx, pad_id, MULTIPLE)
        return [batch[k].pin_memory() if device == "cuda" else batch[k] for k in keys]

    with torch.inference_mode(), torch.jit.optimized_execution(False):
        for idx in [batches[0], batches[-1]] if batches else []:
            module(*[t.to(device) for t in tensors(idx)])
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        outputs = run_batches(module, batches, tensors, device)
        logits = torch.cat(outputs).float().cpu().numpy() if outputs else np.zeros((0, 0))
        elapsed = time.perf_counter() - started
    order = np.concatenate([np.asarray(b, dtype=np.int64) for b in batches]) if batches else np.zeros(0, np.int64)
    result = np.zeros_like(logits)
    result[order] = logits
    return result, len(order) / max(elapsed, 1e-9)


def run_batches(module, batches: list[list[int]], tensors, device: str) -> list:
    """Forward every batch; building batch i+1 overlaps the forward of batch i."""
    outputs, progress = [], Progress("inference", total=sum(map(len, batches)), unit="rows")
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(tensors, batches[0]) if batches else None
        for n in range(len(batches)):
            inputs = pending.result()
            pending = pool.submit(tensors, batches[n + 1]) if n + 1 < len(batches) else None
            outputs.append(module(*[t.to(device, non_blocking=True) for t in inputs]))
            progress.update(len(batches[n]))
    return outputs
