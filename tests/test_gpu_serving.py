"""GPU: the served model's CUDA graphs (steps/serving/graphs.py) answer what the eager trace answers, in the
model itself and through a real server with a model process. Run on a GPU machine:
pytest -m gpu tests/test_gpu_serving.py."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pytest
from serving import Server, post_json
from test_steps_train import run
from tiny import make_texts, write_jsonl

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def opt_ml(tmp_path_factory, tiny_model) -> Path:
    """A tiny BERT exported as a GPU training job exports it (model.cuda.pt, bf16)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("gpu-serving")
    rows = make_texts(40, words=40)
    write_jsonl(root / "rec" / "data.jsonl", [{"doc_id": i, **r} for i, r in enumerate(rows)])
    (root / "pre").mkdir()
    (root / "pre" / "m").symlink_to(tiny_model)
    run([sys.executable, "-m", "steps.prepare", "--input", str(root / "rec"), "--pretrained", str(root / "pre"),
         "--output", str(root / "prep"), "--model", f"m:{MAX_LENGTH}:head:0:"])
    model_dir = root / "opt" / "ml" / "model"
    labels = sorted({r["label"] for r in rows})
    net = AutoModelForSequenceClassification.from_pretrained(str(tiny_model), num_labels=len(labels),
                                                             ignore_mismatched_sizes=True)
    net.save_pretrained(str(model_dir / "hf"))
    AutoTokenizer.from_pretrained(str(tiny_model)).save_pretrained(str(model_dir / "hf"))
    shutil.copy(root / "prep" / "m" / "model.json", model_dir / "prepare_model.json")
    run([sys.executable, "-m", "steps.export", "--model-dir", str(model_dir), "--data-dir", str(root / "prep" / "m")])
    assert (model_dir / "model.cuda.pt").is_file()
    return model_dir.parent


def test_graphs_are_recorded_for_every_shape_and_answer_as_the_eager_trace(opt_ml):
    from transformers import AutoTokenizer

    from steps.serving.model import Model, pad_token

    tokenizer = AutoTokenizer.from_pretrained(str(opt_ml / "model" / "hf"))
    model = Model(opt_ml / "model", pad_token(tokenizer))
    model.warm_up()
    graphs = model.graphs
    assert graphs is not None and graphs.failed is None
    assert sorted(graphs.graphs) == sorted(graphs.shapes()) and len(graphs.graphs) > 20
    rng, replayed = random.Random(0), 0
    for rows in (1, 2, 5, 7, 13, 33, 64, 200):
        windows = [[rng.randrange(5, len(tokenizer)) for _ in range(rng.randrange(1, MAX_LENGTH + 1))] for _ in range(rows)]
        with_graphs = model.forward(windows)
        model.graphs = None
        eager = model.forward(windows)
        model.graphs = graphs
        assert with_graphs.shape == eager.shape == (rows, model.labels)
        assert abs(with_graphs - eager).max() <= 0.02 * max(1.0, abs(eager).max()), rows
        replayed += 1
    assert replayed == 8


def test_a_failed_recording_leaves_every_pass_eager(opt_ml, monkeypatch):
    from transformers import AutoTokenizer

    from steps.serving.model import Model, pad_token

    model = Model(opt_ml / "model", pad_token(AutoTokenizer.from_pretrained(str(opt_ml / "model" / "hf"))))

    def fail(shape):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    monkeypatch.setattr(model.graphs, "_record", fail)
    model.warm_up()
    assert model.graphs.failed.startswith("CUDA error") and not model.graphs.graphs
    assert model.forward([[7, 8, 9]]).shape == (1, model.labels)


def test_a_server_with_graphs_answers_as_one_without(opt_ml):
    texts = [r["text"] for r in make_texts(12, seed=5, words=60)]
    answers = {}
    for graphs in ("1", "0"):
        with Server(opt_ml, env={"SMPIPE_SERVE_WORKERS": "2", "SMPIPE_SERVE_CUDA_GRAPHS": graphs}) as server:
            answers[graphs] = post_json(server.port, texts)
        log = server.log.read_text()
        assert ("pass shapes recorded" in log) == (graphs == "1"), log[-2000:]
        assert "Traceback" not in log and "frame #" not in log, log[-3000:]  # a clean stop, graphs and all
    assert [p["label"] for p in answers["1"]] == [p["label"] for p in answers["0"]]
    for a, b in zip(answers["1"], answers["0"], strict=True):
        assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 0.02 for k in a["probabilities"]), json.dumps([a, b])
