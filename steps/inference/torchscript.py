"""Batched inference of an exported TorchScript model over token-budget batches (inference/planner.py).

On GPU, BERT models take the unpadded pass of inference/packed.py once it agrees with the trace; the next
batch is built into pinned memory on a second thread while the current one runs, copies are
asynchronous and logits stay on the device until the end.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from steps import contract
from steps.core.common import StepError
from steps.core.progress import Progress
from steps.inference.batching import TokenMatrix
from steps.inference.planner import MULTIPLE, plan

BUDGET = {"cuda": (65536, 4096), "cpu": (8192, 64)}  # (padded tokens, rows) per batch


def load(model_dir: Path):
    """(module, device, input keys): the CUDA trace on a GPU host when the export wrote one."""
    import torch

    device = "cuda" if torch.cuda.is_available() and (model_dir / "model.cuda.pt").is_file() else "cpu"
    if device == "cuda":
        # cuDNN's attention builds a plan for every new input shape; token-budget batches all differ in shape,
        # so the memory-efficient kernel serves them instead.
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


def predict(model_dir: Path, dataset, pad_id: int, tokens: int = 0, what: str = "inference") -> tuple:
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
    with torch.inference_mode(), torch.jit.optimized_execution(False):
        module, tensors = forward_pass(model_dir, module, device, keys, matrix, pad_id, batches, what)
        for idx in [batches[0], batches[-1]] if batches else []:
            module(*to_device(tensors(idx), device))
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        outputs = run_batches(module, batches, tensors, device, what)
        logits = torch.cat(outputs).float().cpu().numpy() if outputs else np.zeros((0, 0))
        elapsed = time.perf_counter() - started
    order = np.concatenate([np.asarray(b, dtype=np.int64) for b in batches]) if batches else np.zeros(0, np.int64)
    result = np.zeros_like(logits)
    result[order] = logits
    return result, len(order) / max(elapsed, 1e-9)


def forward_pass(model_dir: Path, trace, device: str, keys: list[str], matrix: TokenMatrix, pad_id: int,
                 batches: list[list[int]], what: str = "inference") -> tuple:
    """(module, inputs of one batch): the unpadded pass (inference/packed.py) where the model and host take
    it and it agrees with the exported trace on the first and the longest batch, else the trace. Either
    way one line says which and why."""
    def padded(idx):
        batch = matrix.batch(idx, pad_id, MULTIPLE)
        return [batch[k].pin_memory() if device == "cuda" else batch[k] for k in keys]

    def unpadded(idx):
        batch = matrix.packed(idx)
        tensors = [batch[k] for k in ("ids", "positions", "cu")]
        return [*([t.pin_memory() for t in tensors] if device == "cuda" else tensors), batch["max_len"]]

    import torch

    from steps.inference import packed

    model, why = packed.build(model_dir / "hf", device, torch.bfloat16) if batches else (None, "no rows")
    if model is not None:
        worst, limit = agreement(model, trace, [batches[0], batches[-1]], unpadded, padded, device, model_dir)
        if worst <= limit:
            print(f"{what}: unpadded pass (variable-length flash attention), max |logit - trace| {worst:.3g}",
                  flush=True)
            return model, unpadded
        why = f"it differs from the exported trace by {worst:.3g} (allowed {limit:.3g})"
    print(f"{what}: padded TorchScript trace ({why})", flush=True)
    return trace, padded


def agreement(model, trace, probe: list[list[int]], unpadded, padded, device: str, model_dir: Path) -> tuple:
    """(largest |logit| difference between the two passes on ``probe`` batches, what is allowed): twice the
    export's bf16 tolerance, since each pass may differ from the fp32 model by that much."""
    worst = largest = 0.0
    for idx in probe:
        a = model(*to_device(unpadded(idx), device)).float()
        b = trace(*to_device(padded(idx), device)).float()
        worst, largest = max(worst, float((a - b).abs().max())), max(largest, float(b.abs().max()))
    report = contract.read_json(model_dir / "export_report.json", {}).get("devices", {}).get("cuda", {})
    return worst, 2 * float(report.get("tolerance", 0.05 * max(1.0, largest)))


def to_device(inputs: list, device: str) -> list:
    """Tensors copied asynchronously (from pinned memory); other arguments (a row length) as they are."""
    import torch

    return [t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in inputs]


def run_batches(module, batches: list[list[int]], tensors, device: str, what: str = "inference") -> list:
    """Forward every batch; building batch i+1 overlaps the forward of batch i."""
    outputs, progress = [], Progress(what, total=sum(map(len, batches)), unit="rows")
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(tensors, batches[0]) if batches else None
        for n in range(len(batches)):
            inputs = pending.result()
            pending = pool.submit(tensors, batches[n + 1]) if n + 1 < len(batches) else None
            outputs.append(module(*to_device(inputs, device)))
            progress.update(len(batches[n]))
    progress.done()
    return outputs
