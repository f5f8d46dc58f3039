"""The serving benchmark's own parts: the targets it reports from one run's figures, a server that dies
or never answers stopping it with the server's own output, and the peer (transformers.pipeline behind
FastAPI) answering the hosting contract over a real socket."""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT))

from bench import serving  # noqa: E402


def figures(rps: float, p99: float) -> dict:
    return {"requests_per_second": rps, "p99_ms": p99}


def test_targets_compare_the_server_with_its_limit_and_the_peer_at_the_same_clients():
    results = {"batched, 64 clients": figures(3000, 25), "batched, 256 clients": figures(5000, 70),
               "peer, 64 clients": figures(100, 20), "peer, 256 clients": figures(50, 900)}
    out = serving.targets(results, offline_rate=6250, clients=[64, 256])
    assert out["saturation_over_offline"] == 0.8  # the best client count against the limit
    assert out["p99_ms_at_64_clients"] == 25
    assert out["over_peer_at_64_clients"] == 30 and out["p99_not_worse_than_peer_at_64_clients"] is False
    assert out["over_peer_at_256_clients"] == 100 and out["p99_not_worse_than_peer_at_256_clients"] is True
    assert "over_peer_at_64_clients" not in serving.targets({"batched, 64 clients": figures(1, 1)}, 10, [64])


def test_a_server_that_dies_stops_the_benchmark_with_its_own_output(tmp_path):
    cmd = [sys.executable, "-c", "print('-'.join(['model', 'missing'])); raise SystemExit(3)"]
    with pytest.raises(SystemExit) as info:
        with serving.serving(cmd, {}, tmp_path / "server.log", serving.free_port(), 1):
            pass
    assert "exit 3" in str(info.value) and "model-missing" in str(info.value)  # what it printed, not its command


def test_the_peer_answers_the_hosting_contract(tiny_model, tmp_path):
    port = serving.free_port()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": serving.pythonpath(), "PEER_MODEL": str(tiny_model),
           "PEER_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "uvicorn", "bench.serving_peer:app", "--host", "127.0.0.1", "--port", str(port)]
    with serving.serving(cmd, env, tmp_path / "peer.log", port, 1) as server:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         data=json.dumps({"inputs": "a sunny day"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    assert server.poll() is not None  # stopped with the benchmark
    assert len(answer) == 1 and set(answer[0]) == {"label", "score"}
