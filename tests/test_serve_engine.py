"""The model process's loop (steps/serve_engine.py) over real pipes, with a stand-in model: what several
serving processes send at once runs as one set of passes, each gets its own rows back, errors and stopped
serving processes do not stop it."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from steps import serve_engine


class SumModel:
    """Logits [sum of the row's ids, its length]; a row holding -1 fails the whole batch."""

    device, rows = "cpu", 16

    def __init__(self):
        self.calls = []

    def forward_matrix(self, matrix):
        rows = [matrix.flat[a:b] for a, b in zip(matrix.offsets[:-1], matrix.offsets[1:], strict=True)]
        self.calls.append(len(rows))
        if any((row == -1).any() for row in rows):
            raise ValueError("a row holds -1")
        return np.array([[row.sum(), len(row)] for row in rows], dtype=np.float32).reshape(len(rows), 2)


@pytest.fixture
def engine():
    """A model loop on a thread behind two pipes; yields (model, [RemoteModel, RemoteModel])."""
    model, pipes = SumModel(), [multiprocessing.Pipe() for _ in range(2)]
    serve_engine.ready(model, [a for a, _ in pipes])
    loop = threading.Thread(target=serve_engine.serve, args=(model, [a for a, _ in pipes]), daemon=True)
    loop.start()
    remotes = [serve_engine.RemoteModel(b) for _, b in pipes]
    yield model, remotes, loop
    for _, b in pipes:
        b.close()
    loop.join(timeout=10)
    assert not loop.is_alive()  # it ends once every serving process has gone


def test_the_ready_message_tells_the_serving_process_the_device_and_rows(engine):
    _, remotes, _ = engine
    assert [(r.device, r.rows) for r in remotes] == [("cpu", 16), ("cpu", 16)]


def test_each_serving_process_gets_its_own_rows_back_in_order(engine):
    _, (first, second), _ = engine
    assert first.forward([[1, 2, 3], [10], []]).tolist() == [[6, 3], [10, 1], [0, 0]]
    assert second.forward([[5] * 7]).tolist() == [[35, 7]]
    assert first.forward([]).shape == (0, 2)


def test_what_arrives_together_runs_together():
    model, pipes = SumModel(), [multiprocessing.Pipe() for _ in range(2)]
    serve_engine.ready(model, [a for a, _ in pipes])
    remotes = [serve_engine.RemoteModel(b) for _, b in pipes]
    remotes[0].connection.send((np.array([2], np.int32), np.array([4, 4], np.int32)))  # both wait before the loop
    remotes[1].connection.send((np.array([1, 1], np.int32), np.array([7, 9], np.int32)))
    loop = threading.Thread(target=serve_engine.serve, args=(model, [a for a, _ in pipes]), daemon=True)
    loop.start()
    assert remotes[0].connection.recv().tolist() == [[8, 2]]
    assert remotes[1].connection.recv().tolist() == [[7, 1], [9, 1]]
    assert model.calls == [3]  # one set of passes for both serving processes
    for _, b in pipes:
        b.close()
    loop.join(timeout=10)


def test_a_failing_batch_is_an_error_for_its_requests_and_the_loop_lives_on(engine):
    _, (first, second), _ = engine
    with pytest.raises(RuntimeError, match="could not run this batch: ValueError: a row holds -1"):
        first.forward([[1, -1]])
    assert second.forward([[2, 2]]).tolist() == [[4, 2]]
    assert first.forward([[3]]).tolist() == [[3, 1]]


def test_a_stopped_serving_process_leaves_the_others_served(engine):
    _, (first, second), loop = engine
    first.connection.close()
    assert second.forward([[1, 1, 1]]).tolist() == [[3, 3]]
    assert loop.is_alive()
