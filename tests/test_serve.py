"""The serving program over real sockets on 127.0.0.1, started as SageMaker starts it (launcher `serve`)
on artifacts that training wrote: every content type, bad requests, concurrency, long documents, ping."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serving import Server, assert_closed, post_json, request
from test_steps_train import run, training_sandbox
from tiny import TOPICS, make_texts, write_jsonl

from steps import contract

HP = {"epochs": "3", "batch_size": "16", "learning_rate": "0.003", "seed": "3"}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """Two trained models: windows of 32 tokens cut at the head, and sliding windows (stride 8)."""
    root = tmp_path_factory.mktemp("serving")
    write_jsonl(root / "rec" / "data.jsonl", [{"doc_id": i, **r} for i, r in enumerate(make_texts(40, words=30))])
    (root / "pre").mkdir()
    for name in ("head", "slide"):
        (root / "pre" / name).symlink_to(tiny_model)
    run([sys.executable, "-m", "steps.prepare", "--input", str(root / "rec"), "--pretrained", str(root / "pre"),
         "--output", str(root / "out"), "--model", "head:32:head:0:", "--model", "slide:16:sliding:4:"])
    out = {}
    for name in ("head", "slide"):
        opt_ml = training_sandbox(root / name, root / "out" / name, tiny_model, {**HP, "model_name": name})
        run([sys.executable, "-m", "steps.launcher", "train"], env={contract.OPT_ML_ENV: str(opt_ml)})
        out[name] = opt_ml
    return out


@pytest.fixture(scope="module")
def server(artifacts):
    """One serving process on any host (a GPU host defaults to several): /ping's counters are that process's."""
    with Server(artifacts["head"], env={"SMPIPE_MAX_BODY_MB": "0.05", "SMPIPE_SERVE_WORKERS": "1"}) as running:
        yield running


def test_training_packaged_its_code_and_ping_describes_the_model(artifacts, server):
    assert (artifacts["head"] / "model" / "code" / "steps" / "serve.py").is_file()
    status, kind, body = request(server.port, "/ping")
    assert status == 200 and kind.startswith("application/json")
    assert json.loads(body)["labels"] == sorted(TOPICS) and json.loads(body)["long_documents"] == "head"


def test_json_in_every_accepted_shape(server):
    one = post_json(server.port, "the match ended with a late goal by the home team")
    assert len(one) == 1 and one[0]["label"] in TOPICS
    assert abs(sum(one[0]["probabilities"].values()) - 1) < 1e-4 and one[0]["score"] == max(one[0]["probabilities"].values())
    many = post_json(server.port, ["bake the flour with butter and sugar", "the rocket reached orbit", ""])
    assert len(many) == 3
    status, _, body = request(server.port, "/invocations", json.dumps(["a bare list", "of texts"]).encode())
    assert status == 200 and len(json.loads(body)["predictions"]) == 2


def test_json_lines_and_csv_answer_one_line_per_input_line(server):
    lines = '"the coach praised the team"\n{"inputs": "garlic and onion in the pan"}\n{"text": "a comet"}\n\n"x"\n'
    status, kind, body = request(server.port, "/invocations", lines.encode(), "application/jsonlines")
    out = body.decode().splitlines()
    assert status == 200 and kind.startswith("application/jsonlines") and len(out) == 5
    assert all(json.loads(line)["label"] in TOPICS for line in out)
    csv_body = 'the referee, the ball and the stadium\n"salt, sugar, and butter",extra column\n'
    status, kind, body = request(server.port, "/invocations", csv_body.encode(), "text/csv")
    rows = body.decode().splitlines()
    assert status == 200 and kind.startswith("text/csv") and len(rows) == 2 and rows[0].split(",")[0] in TOPICS
    status, kind, body = request(server.port, "/invocations", b'{"inputs": ["a"]}', accept="application/jsonlines")
    assert kind.startswith("application/jsonlines") and json.loads(body)["label"] in TOPICS


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (b"text", "text/plain", 415, "content type 'text/plain' is not supported"),
    (b"", "application/json", 400, "the request body is empty"),
    (b"{not json", "application/json", 400, "the body is not JSON: Expecting property name"),
    (b'{"inputs": ["a"], "n": ' + b"7" * 5000 + b"}", "application/json", 400, "holds a number too long to read"),
    (b"[" * 20000 + b"]" * 20000, "application/json", 400, "is nested too deeply to read"),
    (b'"ok"\n' + b"9" * 5000 + b"\n", "application/jsonlines", 400, "line 2 holds a number too long"),
    (b'{"text": "a"}', "application/json", 400, 'needs an "inputs" field'),
    (b'{"inputs": ["a", 3]}', "application/json", 400, '"inputs"[1] is int, not a string'),
    (b'{"inputs": {"a": 1}}', "application/json", 400, "must be a string or a list of strings, not dict"),
    (b'{"inputs": []}', "application/json", 400, "no texts in the request"),
    (b'"ok"\n[1, 2]\n', "application/jsonlines", 400, "line 2: expected a JSON string"),
    (b'"ok"\n{broken\n', "application/jsonlines", 400, "line 2 is not JSON"),
    (b"\xff\xfe", "text/csv", 400, "not UTF-8"),
    (b'{"inputs": "' + b"x" * 60000 + b'"}', "application/json", 413, "larger than 0.05 MB"),
    (b'{"inputs": ["fine", "\\ud800 x"]}', "application/json", 400, "text 1 holds a lone UTF-16 surrogate"),
    (b'"ok"\n"\\udfff"\n', "application/jsonlines", 400, "text 1 holds a lone UTF-16 surrogate"),
    (json.dumps({"inputs": ["a"] * 1001}).encode(), "application/json", 413, "1,001 texts in one request; at most 1,000"),
])
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_lives_on(server, body, content_type, status, message):
    got, kind, answer = request(server.port, "/invocations", body, content_type)
    assert got == status and kind.startswith("application/json")
    assert message in json.loads(answer)["error"]
    assert request(server.port, "/ping")[0] == 200


def test_a_bad_request_among_concurrent_ones_fails_alone(server):
    """Innocent requests sent at the same moment as invalid text are answered; only the bad one gets its 400."""
    good = [r["text"] for r in make_texts(6, seed=4, words=12)]
    bad = b'{"inputs": "\\ud800 x"}'

    def send(item):
        if item is None:
            return request(server.port, "/invocations", bad)[0]
        return request(server.port, "/invocations", json.dumps({"inputs": item}).encode())[0]

    for _ in range(5):
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(send, [None, *good, None, *good]))
        assert statuses.count(400) == 2 and statuses.count(200) == len(statuses) - 2, statuses


def test_concurrent_clients_are_batched_and_get_their_own_answers(server):
    texts = [r["text"] for r in make_texts(8, seed=9, words=20)]
    expected = {t: post_json(server.port, t)[0] for t in texts}
    before = json.loads(request(server.port, "/ping")[2])
    with ThreadPoolExecutor(max_workers=24) as pool:
        got = list(pool.map(lambda t: (t, post_json(server.port, t)[0]), texts * 6))
    for text, answer in got:  # a pass's other rows change a bf16 GPU pass's rounding, not its answers
        alone = expected[text]["probabilities"]
        assert all(abs(answer["probabilities"][k] - alone[k]) < 0.02 for k in alone), (answer, alone)
        top, second = sorted(alone.values())[-1], sorted(alone.values())[-2]
        assert answer["label"] == expected[text]["label"] or top - second < 0.04
    after = json.loads(request(server.port, "/ping")[2])
    requests, batches = after["requests"] - before["requests"], after["batches"] - before["batches"]
    assert requests == len(got) and batches < requests  # several requests shared a forward pass


class FailingModel:
    """A model that fails every pass, as one out of device memory does."""

    device, rows, concurrency = "cpu", 16, 1

    def warm_up(self) -> None:
        pass

    def forward(self, windows):
        raise RuntimeError("CUDA out of memory (simulated)")


def test_a_model_failure_is_a_json_500_naming_it_and_the_server_lives_on(artifacts):
    from fastapi.testclient import TestClient

    from steps.serving.app import create_app

    with TestClient(create_app(artifacts["head"] / "model", model=FailingModel())) as client:
        for _ in range(2):
            answer = client.post("/invocations", json={"inputs": ["a text"]})
            assert answer.status_code == 500
            assert answer.json() == {"error": "the model could not score this request: CUDA out of memory (simulated)"}
        assert client.get("/ping").status_code == 200


class ZeroModel(FailingModel):
    """Equal logits for every window: the server's own path, without a model's cost."""

    labels = 2

    def forward(self, windows):
        import numpy as np

        return np.zeros((len(windows), self.labels), dtype=np.float32)


def test_invocations_are_answered_outside_fastapi_routing_and_other_paths_inside_it(artifacts):
    from fastapi.testclient import TestClient

    from steps.serving.app import create_app

    model_dir = artifacts["head"] / "model"
    ZeroModel.labels = len(json.loads((model_dir / "labels.json").read_text())["labels"])
    server = create_app(model_dir, model=ZeroModel())
    with TestClient(server) as client:
        assert client.get("/ping").status_code == 200
        server.app.router.routes.clear()  # FastAPI's routes gone: /invocations is answered all the same
        answer = client.post("/invocations", json={"inputs": ["a text", "another"]})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
        assert answer.headers["content-type"] == "application/json"
        wrong = client.get("/invocations")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
        assert wrong.json() == {"error": "POST /invocations, not GET"}
        assert client.post("/invocations", content=b"x", headers={"content-type": "text/xml"}).status_code == 415
        assert client.get("/ping").status_code == 404


def test_ping_stays_fast_while_a_large_batch_runs(server):
    lines = "".join(json.dumps(f"{r['text']} {i}") + "\n" for i, r in enumerate(make_texts(60, words=25)))
    done = {}
    worker = threading.Thread(target=lambda: done.update(r=request(server.port, "/invocations", lines.encode()[:50000],
                                                                   "application/jsonlines")))
    worker.start()
    time.sleep(0.05)
    latencies = []
    while worker.is_alive() and len(latencies) < 20:
        started = time.perf_counter()
        assert request(server.port, "/ping", timeout=5)[0] == 200
        latencies.append(time.perf_counter() - started)
    worker.join()
    assert done["r"][0] == 200
    assert max(latencies, default=0) < 1.0


def children(pid: int) -> set[int]:
    """The server's serving and model processes (not multiprocessing's resource tracker)."""
    pids = {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    return {c for c in pids if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def workers_answering(server, count: int) -> set[int]:
    deadline, workers = time.monotonic() + 60, set()
    while len(workers) < count and time.monotonic() < deadline:  # the second worker may still be starting
        workers |= {json.loads(request(server.port, "/ping")[2])["worker"] for _ in range(20)}
    return workers


def test_workers_share_the_port_and_one_model_process_and_stop_together(artifacts, server):
    texts = [r["text"] for r in make_texts(6, seed=4, words=25)]
    alone = post_json(server.port, texts)
    with Server(artifacts["head"], env={"SMPIPE_SERVE_WORKERS": "2"}) as shared:
        workers = workers_answering(shared, 2)
        assert len(workers) == 2 and shared.proc.pid not in workers  # new connections reach both processes
        processes = children(shared.proc.pid)
        assert workers < processes and len(processes) == 3  # and one model process behind them
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(lambda t: post_json(shared.port, t)[0], texts * 4))
    for got, want in zip(answers, alone * 4, strict=True):
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-4)
    for pid in processes:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_stop_when_the_model_process_dies(artifacts):
    with Server(artifacts["head"], env={"SMPIPE_SERVE_WORKERS": "2"}) as shared:
        model_process = (children(shared.proc.pid) - workers_answering(shared, 2)).pop()
        os.kill(model_process, signal.SIGKILL)
        assert shared.proc.wait(timeout=30) != 0  # SageMaker then restarts the container
        assert_closed(shared.port)


def test_workers_refuse_a_folder_that_is_no_model_with_one_message(tmp_path):
    (tmp_path / "ml" / "model").mkdir(parents=True)
    server = Server(tmp_path / "ml", env={"SMPIPE_SERVE_WORKERS": "2"})
    assert server.proc.wait(timeout=60) == 2
    log = server.log.read_text()
    assert log.count("is not an exported model (labels.json missing)") == 1 and "Traceback" not in log


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_damaged_model_file_is_one_clear_error(artifacts, tmp_path, workers):
    shutil.copytree(artifacts["head"] / "model", tmp_path / "ml" / "model")
    traces = sorted((tmp_path / "ml" / "model").glob("model*.pt"))  # a GPU host's export adds model.cuda.pt
    for trace in traces:
        trace.write_bytes(b"not a zip archive")
    server = Server(tmp_path / "ml", env={"SMPIPE_SERVE_WORKERS": workers})
    try:
        assert server.proc.wait(timeout=90) == 2
    finally:
        server.proc.kill()
    log = server.log.read_text()
    loaded = [t.name for t in traces if f"{t.name} cannot be loaded" in log]
    assert len(loaded) == 1 and log.count("cannot be loaded") == 1, log[-3000:]
    assert "export the model again" in log and "Traceback" not in log


def test_workers_refuse_a_port_in_use_with_one_message(artifacts):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = Server(artifacts["head"], env={"SMPIPE_SERVE_WORKERS": "2",
                                                "SAGEMAKER_BIND_TO_PORT": str(taken.getsockname()[1])})
        assert server.proc.wait(timeout=60) == 2
    log = server.log.read_text()
    assert "cannot listen on 127.0.0.1:" in log and "Address already in use" in log and "Traceback" not in log


def test_long_documents_use_the_training_strategy(artifacts):
    sys.path.insert(0, str(artifacts["slide"] / "model" / "code"))
    from steps.serving.model import Predictor

    predictor = Predictor(artifacts["slide"] / "model")
    long_text = " ".join(["orbit rocket planet star galaxy telescope"] * 40)
    encoded = predictor.encode([long_text, "short cake"])
    windows = sum(1 for d in encoded.doc if d == 0)
    assert windows > 10 and all(len(w) <= 16 for w in encoded.windows)  # max_length 16, stride 4
    with Server(artifacts["slide"]) as running:
        answer = post_json(running.port, [long_text, "short cake"])
    assert len(answer) == 2 and answer[0]["label"] == predictor.predict([long_text])[0]["label"]


def test_make_serve_and_invoke_on_a_locally_registered_version(artifacts, write_spec, tmp_path):
    import subprocess
    import tarfile

    from conftest import MINIMAL, ROOT
    from serving import free_port

    spec = write_spec(MINIMAL.replace("minimal-group", "tiny-group"))
    store, runs = tmp_path / "store", tmp_path / "runs"
    archive = store / "b" / "runs" / "exec-1" / "best-model" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in (artifacts["head"] / "model").iterdir():
            tar.add(path, arcname=path.name)
    (runs / "registry" / "tiny-group").mkdir(parents=True)
    (runs / "registry" / "tiny-group" / "1.json").write_text(json.dumps({
        "ModelPackageGroupName": "tiny-group", "ModelPackageVersion": 1, "ModelApprovalStatus": "Approved",
        "ModelDataUrl": "s3://b/runs/exec-1/best-model/model.tar.gz", "PipelineExecutionId": "exec-1"}))
    port = free_port()
    common = ["--store", str(store), "--runs", str(runs), "--port", str(port)]
    server = subprocess.Popen([sys.executable, "-m", "pipelines", "serve", str(spec), *common], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = server.stdout.readline()
        assert "tiny-group version 1 (Approved, execution exec-1)" in first, first + server.stdout.read()[-3000:]
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run([sys.executable, "-m", "pipelines", "invoke", str(spec), "--port", str(port),
                                     "--text", "the rocket reached orbit", "--text", "bake a cake"],
                                    cwd=ROOT, capture_output=True, text=True)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        lines = result.stdout.splitlines()
        assert result.returncode == 0 and len(lines) == 2 and lines[0].split()[0] in TOPICS, result.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert_closed(port)  # make serve became the server: its stop left nothing listening
    missing = subprocess.run([sys.executable, "-m", "pipelines", "serve", str(spec), *common[:4], "--version", "7"],
                             cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "tiny-group has no version 7" in missing.stderr
