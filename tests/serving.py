"""Helpers for serving tests: a trained tiny model artifact, and a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, path: str, body: bytes | None = None, content_type: str = "application/json",
            accept: str | None = None, timeout: float = 60) -> tuple[int, str, bytes]:
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def post_json(port: int, texts) -> list[dict]:
    status, _, body = request(port, "/invocations", json.dumps({"inputs": texts}).encode())
    assert status == 200, body
    return json.loads(body)["predictions"]


class Server:
    """`python -m steps.launcher serve` over an /opt/ml sandbox whose model/ is the artifact."""

    def __init__(self, opt_ml: Path, env: dict | None = None):
        self.port = free_port()
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        full = {**os.environ, "PYTHONPATH": path, "SMPIPE_OPT_ML": str(opt_ml), "SMPIPE_SERVE_HOST": "127.0.0.1",
                "SAGEMAKER_BIND_TO_PORT": str(self.port), **(env or {})}
        full.pop("SMPIPE_EXPERIMENT_DIR", None)
        self.log = opt_ml.parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "steps.launcher", "serve"], cwd=opt_ml.parent, env=full,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if request(self.port, "/ping", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("the server did not answer /ping: " + self.log.read_text()[-3000:])

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        assert_closed(self.port)  # the launcher execs the server: stopping it stops everything behind the port


def assert_closed(port: int) -> None:
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on port {port}"
