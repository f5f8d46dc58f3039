"""The model behind the serving program: the exported artifact, encoded the way training encoded it.

A model artifact holds the TorchScript traces (model.pt for CPU, model.cuda.pt for GPU), the tokenizer
(hf/), labels.json and prepare_model.json (max_length and the long-document strategy of training), so a
served document is cut into windows exactly as the training documents were and the windows' logits are
averaged back into one prediction per document. Nothing is set twice.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steps import contract
from steps.core import udf
from steps.core.common import StepError, aggregate_windows, window_settings
from steps.inference import planner, torchscript
from steps.inference.batching import TokenMatrix
from steps.serving import graphs as serve_graphs

# (padded tokens, rows) in one forward pass, and a pass's fixed cost in padded tokens: a pass costs a fixed time
# plus a time per padded token; the third figure is the fixed part expressed in tokens (bench/serving_probe.py).
BUDGET = {"cuda": (32768, 512, 4096), "cpu": (1024, 16, 64)}
GRAPH_TOKENS = 8192  # passes up to this many padded tokens replay CUDA graphs (steps/serving/graphs.py)


@dataclass
class Encoded:
    """One request's documents as windows of token ids; ``doc`` maps each window to its document."""

    windows: list[list[int]]
    doc: list[int]
    documents: int

    @property
    def tokens(self) -> int:
        return sum(len(w) for w in self.windows)


def check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "labels.json").is_file():
        raise StepError(f"{model_dir} is not an exported model (labels.json missing): serve a model.tar.gz "
                        "written by a training job")


def read_artifact(model_dir: Path) -> tuple[list[str], dict]:
    """The labels and the windowing settings training used (max_length, long_documents)."""
    check_model_dir(model_dir)
    labels = contract.read_json(model_dir / "labels.json")["labels"]
    return labels, contract.read_json(model_dir / "prepare_model.json", {"max_length": 512, "long_documents": "head"})


def pad_token(tokenizer) -> int:
    return tokenizer.pad_token_id or 0


class Model:
    """The traced module on its device: logits of windows of token ids, in length-sorted passes."""

    concurrency = 1  # calls of forward at a time (the serving batcher runs one batch on it at a time)

    def __init__(self, model_dir: Path, pad_id: int):
        labels, settings = read_artifact(model_dir)
        graphs = serve_graphs.prepare()
        self.module, self.device, self.keys = torchscript.load(model_dir)
        self.pad_id, self.labels, self.max_length = pad_id, len(labels), int(settings["max_length"])
        tokens, rows, overhead = BUDGET[self.device]
        self.tokens = int(os.environ.get("SMPIPE_SERVE_TOKENS", tokens))  # padded tokens in one forward pass
        self.rows = int(os.environ.get("SMPIPE_SERVE_ROWS", rows))
        self.overhead = int(os.environ.get("SMPIPE_SERVE_OVERHEAD_TOKENS", overhead))
        self.graphs = None
        if graphs and self.device == "cuda":
            self.graphs = serve_graphs.Graphs(self.module, self.keys, pad_id, self.max_length,
                                              int(os.environ.get("SMPIPE_SERVE_GRAPH_TOKENS", GRAPH_TOKENS)))

    def warm_up(self) -> None:
        """One pass per width class up to max_length on a GPU (the first pass of a shape loads kernels and
        sets up cuBLAS), the shortest and longest on a CPU, so the first requests do not pay for that."""
        limit = self.max_length
        widths = planner.width_classes(limit) if self.device == "cuda" else [planner.MULTIPLE, limit]
        for width in widths:
            self.forward([[self.pad_id] * width])
        if self.device == "cuda":  # a full pass reserves the memory that later passes of any shape reuse
            self.forward([[self.pad_id] * limit] * max(1, min(self.rows, self.tokens // limit)))
        if self.graphs:
            self._record_graphs()

    def _record_graphs(self) -> None:
        import torch

        started, reserved = time.perf_counter(), torch.cuda.memory_reserved()
        self.graphs.record()
        if self.graphs.failed:
            print(f"CUDA graphs off, every pass runs eagerly: {self.graphs.failed}", file=sys.stderr, flush=True)
            return
        print(f"CUDA graphs: {len(self.graphs.graphs)} pass shapes recorded in {time.perf_counter() - started:.1f} s, "
              f"{(torch.cuda.memory_reserved() - reserved) / 2**20:.0f} MiB", file=sys.stderr, flush=True)

    @contextmanager
    def stream(self):
        """A CUDA stream of this thread's own, so that passes from several threads run side by side; warmed
        by one short pass (cuBLAS sets up per stream)."""
        import torch

        if self.device != "cuda":
            yield
            return
        with torch.cuda.stream(torch.cuda.Stream()):
            self.forward([[self.pad_id] * planner.MULTIPLE])
            yield

    def forward(self, windows: list[list[int]]) -> np.ndarray:
        return self.forward_matrix(TokenMatrix.from_rows(windows))

    def forward_matrix(self, matrix: TokenMatrix) -> np.ndarray:
        """Logits of every row, in order: length-sorted passes within the token budget, every pass launched
        before the first result is read back (on a GPU the passes queue up behind each other)."""
        import torch

        out, launched = np.zeros((len(matrix.lengths), self.labels), dtype=np.float32), []
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            for idx in planner.plan(matrix.lengths, self.tokens, self.rows, self.overhead):
                tensors = matrix.batch(idx, self.pad_id, planner.MULTIPLE)
                logits = self.graphs.run(tensors) if self.graphs else None
                if logits is None:
                    logits = self.module(*[tensors[k].to(self.device) for k in self.keys])
                launched.append((idx, logits))
            for idx, logits in launched:
                out[idx] = logits.float().cpu().numpy()
        return out


class Predictor:
    """Requests in, predictions out: the tokenizer and the training's windowing around a ``Model`` (in this
    process, or in the model process that several serving processes share: steps/serving/engine.py)."""

    def __init__(self, model_dir: Path, model=None):
        from transformers import AutoTokenizer

        self.labels, self.settings = read_artifact(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "hf"))
        self.encode_fn = udf.function("encode_data")
        self.pad_id = pad_token(self.tokenizer)
        self.model = model or Model(model_dir, self.pad_id)
        self.device, self.rows = self.model.device, self.model.rows

    def warm_up(self) -> None:
        self.model.warm_up()

    def describe(self) -> dict:
        return {"labels": self.labels, "device": self.device, "max_length": int(self.settings["max_length"]),
                "long_documents": self.settings["long_documents"]}

    def encode(self, texts: list[str]) -> Encoded:
        """Thread-safe (the fast tokenizer releases the GIL): request handlers call it concurrently."""
        batch = {"text": list(texts), "labels": [0] * len(texts), "doc_id": list(range(len(texts)))}
        out = self.encode_fn(batch, self.tokenizer, self.settings)
        return Encoded([list(ids) for ids in out["input_ids"]], [int(d) for d in out["doc_id"]], len(texts))

    def predictions(self, encoded: Encoded, logits: np.ndarray) -> list[dict]:
        """The document's windows aggregated as in evaluation (mean logits by default), then softmax."""
        _, aggregation = window_settings(self.settings)
        _, scores, _ = aggregate_windows(encoded.doc, logits, np.zeros(len(encoded.doc), dtype=np.int64), aggregation)
        if aggregation == "vote":
            probs = scores / scores.sum(axis=1, keepdims=True)
        else:
            probs = np.exp(scores - scores.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
        return [{"label": self.labels[int(p.argmax())], "score": round(float(p.max()), 6),
                 "probabilities": {name: round(float(v), 6) for name, v in zip(self.labels, p, strict=True)}}
                for p in probs]

    def predict_encoded(self, encoded: Encoded) -> list[dict]:
        return self.predictions(encoded, self.model.forward(encoded.windows))

    def predict(self, texts: list[str]) -> list[dict]:
        return self.predict_encoded(self.encode(texts))
