"""The model process's loop (steps/serving/engine.py) over real pipes, with a stand-in model: what several
serving processes send at once runs as one set of passes, each gets its own rows back, errors and stopped
serving processes do not stop it."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

from steps.serving import engine as serve_engine


def in_thread(fn, *args) -> Future:
    """fn(*args) on a daemon thread: a call that never returns fails the test instead of hanging it."""
    result = Future()
    threading.Thread(target=lambda: result.set_result(fn(*args)), daemon=True).start()
    return result


class SumModel:
    """Logits [sum of the row's ids, its length]; a row holding -1 fails the whole batch."""

    device, rows = "cpu", 16

    def __init__(self):
        self.calls, self.threads = [], set()

    @contextmanager
    def stream(self):
        self.threads.add(threading.current_thread().name)
        yield

    def forward_matrix(self, matrix):
        rows = [matrix.flat[a:b] for a, b in zip(matrix.offsets[:-1], matrix.offsets[1:], strict=True)]
        self.calls.append(len(rows))
        if any((row == -1).any() for row in rows):
            raise ValueError("a row holds -1")
        return np.array([[row.sum(), len(row)] for row in rows], dtype=np.float32).reshape(len(rows), 2)


def connect(model, count: int = 2) -> tuple[list, list]:
    """(the model process's ends, the serving processes' RemoteModels) of ``count`` pipes, ready sent."""
    pipes = [multiprocessing.Pipe() for _ in range(count)]
    serve_engine.ready(model, [a for a, _ in pipes])
    return [a for a, _ in pipes], [serve_engine.RemoteModel(b) for _, b in pipes]


def start(model, ends: list, threads: int = 1) -> threading.Thread:
    loop = threading.Thread(target=serve_engine.serve, args=(model, ends, threads), daemon=True)
    loop.start()
    return loop


def stop(remotes: list, loop: threading.Thread) -> None:
    for remote in remotes:
        remote.close()
    loop.join(timeout=10)
    assert not loop.is_alive()  # it ends once every serving process has gone


@pytest.fixture
def engine():
    """A model loop on a thread behind two pipes; yields (model, [RemoteModel, RemoteModel], loop)."""
    model = SumModel()
    ends, remotes = connect(model)
    loop = start(model, ends)
    yield model, remotes, loop
    stop(remotes, loop)


def test_the_ready_message_tells_the_serving_process_the_device_and_rows(engine):
    _, remotes, _ = engine
    assert [(r.device, r.rows) for r in remotes] == [("cpu", 16), ("cpu", 16)]


def test_each_serving_process_gets_its_own_rows_back_in_order(engine):
    _, (first, second), _ = engine
    assert first.forward([[1, 2, 3], [10], []]).tolist() == [[6, 3], [10, 1], [0, 0]]
    assert second.forward([[5] * 7]).tolist() == [[35, 7]]
    assert first.forward([]).shape == (0, 2)


def test_what_arrives_together_runs_together():
    model = SumModel()
    ends, remotes = connect(model)
    answers = []
    with ThreadPoolExecutor(2) as pool:  # both requests wait in their pipes before the loop starts
        answers.append(pool.submit(remotes[0].forward, [[4, 4]]))
        answers.append(pool.submit(remotes[1].forward, [[7], [9]]))
        while len(remotes[0].waiting) + len(remotes[1].waiting) < 2:
            time.sleep(0.01)
        loop = start(model, ends)
        assert [a.result(timeout=10).tolist() for a in answers] == [[[8, 2]], [[7, 1], [9, 1]]]
    assert model.calls == [3]  # one set of passes for both serving processes
    stop(remotes, loop)


def test_a_failing_batch_is_an_error_for_its_requests_and_the_loop_lives_on(engine):
    _, (first, second), _ = engine
    with pytest.raises(RuntimeError, match="could not run this batch: ValueError: a row holds -1"):
        first.forward([[1, -1]])
    assert second.forward([[2, 2]]).tolist() == [[4, 2]]
    assert first.forward([[3]]).tolist() == [[3, 1]]


def test_a_stopped_serving_process_leaves_the_others_served(engine):
    _, (first, second), loop = engine
    first.close()
    assert second.forward([[1, 1, 1]]).tolist() == [[3, 3]]
    assert loop.is_alive()


def test_one_serving_process_has_several_batches_in_flight_each_answered_in_its_place(engine):
    model, (first, _), _ = engine
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: first.forward([[n] * n, [1]]).tolist(), range(1, 41)))
    assert answers == [[[n * n, n], [1, 1]] for n in range(1, 41)]
    assert first.concurrency > 1


def test_a_serving_process_learns_that_the_model_process_stopped():
    [engine_end], [remote] = connect(SumModel(), 1)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(remote.forward, [[1]])
        while not remote.waiting:
            time.sleep(0.01)
        engine_end.close()  # the model process died with a request in flight
        with pytest.raises(RuntimeError, match="model process has stopped"):
            waiting.result(timeout=10)
    with pytest.raises(RuntimeError, match="model process has stopped"):
        remote.forward([[2]])


class MeetingModel(SumModel):
    """Answers only when two passes run at the same time (both wait for each other)."""

    def __init__(self):
        super().__init__()
        self.meeting, self.entered = threading.Barrier(2, timeout=10), threading.Event()

    def forward_matrix(self, matrix):
        self.entered.set()
        self.meeting.wait()
        return super().forward_matrix(matrix)


def test_model_threads_run_passes_side_by_side_each_in_its_stream():
    model = MeetingModel()
    ends, (first, second) = connect(model)
    loop = start(model, ends, threads=2)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(first.forward, [[5]])
        assert model.entered.wait(10)  # the first pass runs (and waits) before the second request is sent
        assert second.forward([[2, 2]]).tolist() == [[4, 2]]
        assert waiting.result(timeout=10).tolist() == [[5, 1]]
    assert model.threads == {"model-0", "model-1"}
    stop([first, second], loop)


class GatedModel(SumModel):
    """Runs a pass only once the test opens the gate."""

    def __init__(self):
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()

    def forward_matrix(self, matrix):
        self.entered.set()
        assert self.gate.wait(10)
        return super().forward_matrix(matrix)


def test_a_serving_process_that_stops_while_its_batch_runs_costs_no_model_thread():
    model = GatedModel()
    ends, (first, second) = connect(model)
    loop = start(model, ends)
    first.connection.send((0, np.array([1], np.int32), np.array([5], np.int32)))
    assert model.entered.wait(10)
    first.close()  # gone before its answer: the answer cannot be sent
    model.gate.set()
    answer = in_thread(second.forward, [[2, 2]])  # the only model thread must still be there to answer it
    assert answer.result(timeout=10).tolist() == [[4, 2]]
    stop([second], loop)
