"""One model process shared by the serving processes when there are several (SMPIPE_SERVE_WORKERS > 1).

Each serving process parses, encodes and batches its own concurrent requests (steps/serve_batcher.py) and
sends the windows' token ids over a pipe to the one process that holds the model, which joins what every
serving process sent into one set of forward passes and answers each with its logits. So the device holds one
copy of the model and runs batches as large as the whole load, not one share of it per process: with a model
in every serving process the GPU switched between processes, each with a fraction of the clients (H200,
BERT-base: two processes 1,990 req/s, four 2,020).
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np

from steps.batching import TokenMatrix


class RemoteModel:
    """A serving process's side of the pipe: ``forward`` like ``serve_model.Model``, run in the model process."""

    def __init__(self, connection):
        info = connection.recv()  # sent once the model process has loaded and warmed up the model
        self.connection, self.device, self.rows = connection, info["device"], info["rows"]
        self.lock = threading.Lock()  # one request on the pipe at a time, then its answer

    def warm_up(self) -> None:
        """The model process warmed up before it answered."""

    def forward(self, windows: list[list[int]]) -> np.ndarray:
        lengths = np.fromiter(map(len, windows), dtype=np.int32, count=len(windows))
        flat = np.fromiter(itertools.chain.from_iterable(windows), dtype=np.int32, count=int(lengths.sum()))
        with self.lock:
            self.connection.send((lengths, flat))
            reply = self.connection.recv()
        if isinstance(reply, str):
            raise RuntimeError(f"the model process could not run this batch: {reply}")
        return reply


def ready(model, connections) -> None:
    for connection in connections:
        connection.send({"device": model.device, "rows": model.rows})


def serve(model, connections) -> None:
    """Until every serving process has gone: take what each has sent, one set of passes, answer each."""
    from multiprocessing.connection import wait

    open_ = list(connections)
    while open_:
        taken = []
        for connection in wait(open_):
            try:
                taken.append((connection, connection.recv()))
            except (EOFError, OSError):  # that serving process stopped
                open_.remove(connection)
        if taken:
            answer(model, taken)


def answer(model, taken: list) -> None:
    lengths = np.concatenate([message[0] for _, message in taken]).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([message[1] for _, message in taken]).astype(np.int64)
    try:
        logits = model.forward_matrix(TokenMatrix(offsets, flat))
    except Exception as exc:  # noqa: BLE001 - those requests fail with the reason; the model process lives on
        for connection, _ in taken:
            connection.send(f"{type(exc).__name__}: {exc}")
        return
    start = 0
    for connection, (rows, _) in taken:
        connection.send(logits[start:start + len(rows)])
        start += len(rows)


def run(model_dir: Path, connections) -> None:
    """The model process: load, warm up, tell the serving processes, then serve them."""
    import gc

    from transformers import AutoTokenizer

    from steps.serve_model import Model, pad_token

    model = Model(model_dir, pad_token(AutoTokenizer.from_pretrained(str(model_dir / "hf"))))
    model.warm_up()
    gc.collect()
    gc.freeze()  # as in steps/serve.py: full collections over torch's objects would stall every batch
    ready(model, connections)
    serve(model, connections)
