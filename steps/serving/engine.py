"""One model process shared by the serving processes when there are several (SMPIPE_SERVE_WORKERS > 1).

Each serving process parses, encodes and batches its own concurrent requests (steps/serving/batcher.py) and
sends the windows' token ids over a pipe to the one process that holds the model, as soon as a batch is
encoded (several batches in flight). The model process joins what has arrived from every serving process
into one set of passes on the next free model thread and answers each batch with its logits. The device holds
one copy of the model; why one model process beats a model per serving process, and by how much:
bench/results/serving-gpu-2026-11-30-model-process.json."""

from __future__ import annotations

import itertools
import os
import socket
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from steps.inference.batching import TokenMatrix

# Batches in flight per serving process, and the fixed cost of a pass (in padded tokens) the model process plans
# with: several threads issuing side by side hide most of what a pass costs one thread, so it is lower than a
# single thread's. Both chosen by bench/serving.py (bench/results/serving-gpu-2026-11-30-model-process.json).
INFLIGHT = 8
OVERHEAD_TOKENS = {"cuda": 1536}


class RemoteModel:
    """A serving process's side of the pipe: ``forward`` like ``serve_model.Model``, run in the model process.
    Several calls may wait at once (``concurrency``): a batch goes to the model process as soon as it is
    encoded, not after the previous one came back, and the model process joins what has arrived meanwhile."""

    def __init__(self, connection):
        info = connection.recv()  # sent once the model process has loaded and warmed up the model
        self.connection, self.device, self.rows = connection, info["device"], info["rows"]
        self.concurrency = int(os.environ.get("SMPIPE_SERVE_INFLIGHT") or INFLIGHT)
        self.lock, self.keys, self.waiting, self.stopped = threading.Lock(), itertools.count(), {}, False
        threading.Thread(target=self._read, name="model-replies", daemon=True).start()

    def warm_up(self) -> None:
        """The model process warmed up before it answered."""

    def forward(self, windows: list[list[int]]) -> np.ndarray:
        matrix = TokenMatrix.from_rows(windows)
        lengths, flat = matrix.lengths.astype(np.int32), matrix.flat.astype(np.int32)  # half the bytes on the pipe
        answer = Future()
        with self.lock:
            if self.stopped:
                raise RuntimeError("the model process has stopped")
            key = next(self.keys)
            try:
                self.connection.send((key, lengths, flat))
            except OSError:  # the model process has gone (its pipe end is closed)
                self.stopped = True
                raise RuntimeError("the model process has stopped") from None
            self.waiting[key] = answer
        reply = answer.result()
        if isinstance(reply, str):
            raise RuntimeError(f"the model process could not run this batch: {reply}")
        return reply

    def close(self) -> None:
        """Shut the pipe down (not only close it: the reply reader is blocked reading it), so both ends see EOF."""
        if self.connection.closed:
            return
        with socket.fromfd(self.connection.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _read(self) -> None:
        try:
            while True:
                key, reply = self.connection.recv()
                with self.lock:
                    answer = self.waiting.pop(key)
                answer.set_result(reply)
        except (EOFError, OSError):
            with self.lock:
                self.stopped = True
                for answer in self.waiting.values():
                    answer.set_exception(RuntimeError("the model process has stopped"))


def ready(model, connections) -> None:
    for connection in connections:
        connection.send({"device": model.device, "rows": model.rows})


def serve(model, connections, threads: int = 1) -> None:
    """Until every serving process has gone: what has arrived meanwhile goes to the next free model thread as
    one set of passes, and each serving process gets its rows back. Several threads issue passes at once
    (each on its own CUDA stream): issuing a TorchScript pass costs the CPU about as long, whatever its size,
    as the GPU takes to run a pass of a few thousand tokens."""
    from multiprocessing.connection import wait

    open_, pending, changed, done, sending = list(connections), [], threading.Condition(), [], threading.Lock()

    def work() -> None:
        with model.stream():
            while True:
                with changed:
                    changed.wait_for(lambda: pending or done)
                    if not pending:
                        return
                    taken = pending[:]
                    pending.clear()
                answer(model, taken, sending)

    pool = [threading.Thread(target=work, name=f"model-{k}", daemon=True) for k in range(threads)]
    for thread in pool:
        thread.start()
    while open_:
        taken = []
        for connection in wait(open_):
            try:
                taken.append((connection, connection.recv()))
            except (EOFError, OSError):  # that serving process stopped
                open_.remove(connection)
        with changed:
            pending.extend(taken)
            changed.notify()
    with changed:
        done.append(True)
        changed.notify_all()
    for thread in pool:
        thread.join()


def answer(model, taken: list, sending: threading.Lock) -> None:
    """One set of passes over every message taken; each message's rows back to its sender, tagged with its key."""
    matrix = TokenMatrix.from_lengths(np.concatenate([message[1] for _, message in taken]),
                                      np.concatenate([message[2] for _, message in taken]))
    try:
        logits = model.forward_matrix(matrix)
        replies, start = [], 0
        for _, (_, rows, _) in taken:
            replies.append(logits[start:start + len(rows)])
            start += len(rows)
    except Exception as exc:  # noqa: BLE001 - those requests fail with the reason; the model process lives on
        replies = [f"{type(exc).__name__}: {exc}"] * len(taken)
    with sending:  # model threads may answer the same serving process at once
        for (connection, (key, _, _)), reply in zip(taken, replies, strict=True):
            try:
                connection.send((key, reply))
            except OSError:  # that serving process stopped while its batch ran; the receiving loop drops it
                pass


def model_threads(device: str) -> int:
    """Threads issuing passes: four on a GPU (H200, BERT-base, 64 real documents a call: one thread 5,010
    documents/s, two 6,220, four 6,480); one on a CPU, where torch already spreads a pass over every core."""
    return int(os.environ.get("SMPIPE_SERVE_MODEL_THREADS") or (4 if device == "cuda" else 1))


def run(model_dir: Path, connections) -> None:
    """The model process: load, warm up, tell the serving processes, then serve them."""
    import gc

    from transformers import AutoTokenizer

    from steps.serving.model import Model, pad_token

    model = Model(model_dir, pad_token(AutoTokenizer.from_pretrained(str(model_dir / "hf"))))
    if not os.environ.get("SMPIPE_SERVE_OVERHEAD_TOKENS"):
        model.overhead = OVERHEAD_TOKENS.get(model.device, model.overhead)
    model.warm_up()
    gc.collect()
    gc.freeze()  # as in steps/serve.py: full collections over torch's objects would stall every batch
    ready(model, connections)
    serve(model, connections, model_threads(model.device))
