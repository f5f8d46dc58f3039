"""Several serving processes on one port, each with its own listening socket (SO_REUSEPORT), and one
model process that runs the forward passes of them all (steps/serving/engine.py).

One Python process parses and answers fewer requests than a GPU can score; more need more processes.
With one shared socket (uvicorn's own workers) the process that wakes first accepts a burst of new
connections and keep-alive clients stay on it; with a socket per process the kernel spreads connections
over the processes evenly. The parent starts the processes, forwards SIGTERM and stops them all as soon
as one exits (SageMaker then restarts the container).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path

from steps.core.common import StepError


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _model_process(model_dir: Path, connections: list) -> None:
    from steps.serving import engine as serve_engine

    try:
        serve_engine.run(model_dir, connections)
    except Exception as exc:  # noqa: BLE001 - as in _worker
        print(f"model process {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2 if isinstance(exc, StepError) else 1) from None


def _worker(host: str, port: int, connection) -> None:
    import uvicorn

    from steps.serving.app import app_from_env

    try:
        app = app_from_env(connection)  # the model process is ready before this worker's socket opens
        sock = listening_socket(host, port)
    except EOFError:  # the model process stopped before it was ready; it said why
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - the parent reports the exit; the message says why
        print(f"serving worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2 if isinstance(exc, StepError) else 1) from None
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=75)).run(sockets=[sock])


def run(host: str, port: int, workers: int, model_dir: Path) -> int:
    """Run ``workers`` serving processes and the model process until a signal or until one of them exits;
    its exit code."""
    try:  # a port held by another program: one message here, not one per worker after its model loaded
        listening_socket(host, port).close()
    except OSError as exc:
        raise StepError(f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses it or choose "
                        "another port (SAGEMAKER_BIND_TO_PORT, make serve port=…)") from None
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    pipes = [context.Pipe() for _ in range(workers)]
    processes = [context.Process(target=_model_process, args=(model_dir, [a for a, _ in pipes]), name="serve-model"),
                 *(context.Process(target=_worker, args=(host, port, b), name=f"serve-{k}")
                   for k, (_, b) in enumerate(pipes))]
    for process in processes:
        process.start()
    for end in (end for pair in pipes for end in pair):  # the children hold them now: a stopped process is an EOF
        end.close()
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    while not stopping and all(p.is_alive() for p in processes):
        time.sleep(0.2)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=30)
    failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    return 0 if stopping or not failed else failed[0] or 1
