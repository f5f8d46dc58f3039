"""Steady-state training throughput: samples/s, real (non-pad) tokens/s, model FLOPs utilisation.

FLOPs follow the standard encoder count: per sequence of n real tokens, training costs
6·N·n + 12·L·h·n² (N = non-embedding parameters, L layers, h hidden size); a forward pass a third
of that. Only real tokens count, so padding shows up as lost MFU, not as work done.
"""

from __future__ import annotations

import time

# Dense bf16/fp16 tensor peak per GPU (no sparsity), FLOP/s. H200 has H100's compute.
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}
WARMUP_STEPS = 10  # compilation and allocator warm-up happen here; they are not throughput


def peak_flops(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def model_shape(model) -> dict[str, int]:
    """Non-embedding parameters, layers and hidden size of a HF encoder."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    hidden = getattr(config, "hidden_size", None) or config.dim
    params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return {"non_embedding_params": params, "layers": layers, "hidden": hidden}


def training_flops(shape: dict[str, int], tokens: float, tokens_squared: float) -> float:
    """Training FLOPs for sequences whose lengths sum to ``tokens`` and whose squares sum to ``tokens_squared``."""
    return 6 * shape["non_embedding_params"] * tokens + 12 * shape["layers"] * shape["hidden"] * tokens_squared


class Meter:
    """Counts on the GPU (no host sync per step); reads once when the window closes.

    The window opens after ``warmup`` optimizer steps and closes at ``stop()``.
    """

    def __init__(self, shape: dict[str, int], device_name: str, processes: int, warmup: int = WARMUP_STEPS):
        self.shape, self.device_name, self.processes, self.warmup = shape, device_name, processes, warmup
        self.steps, self.started, self.counts = 0, None, None

    def batch(self, lengths, computed_tokens: int) -> None:
        """Count one micro-batch of rows of ``lengths`` real tokens, ``computed_tokens`` with the padding
        (call for every batch, inside or outside the window)."""
        if self.started is None:
            return
        lengths = lengths.float()
        row = [float(lengths.shape[0]), lengths.sum(), (lengths * lengths).sum(), float(computed_tokens)]
        self.counts = row if self.counts is None else [a + b for a, b in zip(self.counts, row, strict=True)]

    def step(self, sync) -> None:
        """One optimizer step done; ``sync`` waits for the device (opens the window exactly)."""
        self.steps += 1
        if self.steps == self.warmup:
            sync()
            self.started = time.perf_counter()

    def stop(self, sync, reduce=lambda values: values) -> dict | None:
        """Close the window; ``reduce`` sums the per-process counts (all processes must call it)."""
        if self.started is None or self.counts is None:
            return None
        sync()
        elapsed = time.perf_counter() - self.started
        samples, tokens, squares, padded = (float(v) for v in reduce([float(c) for c in self.counts]))
        flops = training_flops(self.shape, tokens, squares)
        peak = peak_flops(self.device_name)
        result = {"steps": self.steps - self.warmup, "seconds": elapsed, "samples_per_second": samples / elapsed,
                  "tokens_per_second": tokens / elapsed, "padded_tokens_per_second": padded / elapsed,
                  "padding_efficiency": tokens / padded if padded else 1.0, "model_tflops_per_second": flops / elapsed / 1e12,
                  "processes": self.processes, "device": self.device_name}
        result["mfu"] = flops / elapsed / (peak * self.processes) if peak else None
        self.started, self.counts = None, None
        return result
