"""The AWS examples run locally under the faithful container contract: their s3:// sources are seeded in the
local store with tiny data and a tiny model, their specs shrunk on the command line (epochs, trials), nothing
else changed. EXP-0002 trains each model on two hosts (InstanceCount 2) with spot checkpoints; EXP-0003 tunes.
EXP-0001, the main job, runs in CI's `make local` path (tests/test_newcomer_path.py runs the same targets)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT
from tiny import make_texts

from pipelines.store.local import LocalStore

pytestmark = pytest.mark.slow


def seed(store: LocalStore, uri: str, rows: list[dict], text: str, label: str) -> None:
    path = store.path(uri + "part-0.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({text: r["text"], label: r["label"]}) + "\n" for r in rows), encoding="utf-8")


def seed_model(store: LocalStore, uri: str, model) -> None:
    store.upload(model, uri)


def run_local(tmp_path, example: str, *overrides: str) -> tuple[subprocess.CompletedProcess, dict]:
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "pipelines", "local", str(ROOT / "experiments" / example / "experiment.yaml"),
           *[o for o in overrides if "=" in o], "--store", str(tmp_path / "store"), "--runs", str(runs),
           *[o for o in overrides if "=" not in o]]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    states = sorted(runs.glob("local-*/state.json"))
    return result, json.loads(states[-1].read_text()) if states else {}


def test_the_two_model_example_trains_each_model_on_two_hosts(tmp_path, tiny_model):
    store = LocalStore(tmp_path / "store")
    seed(store, "s3://acme-raw/tickets/2026-11/", make_texts(30), "body", "queue")
    for name in ("bert-base-uncased", "distilbert-base-uncased"):
        seed_model(store, f"s3://acme-ml-models/{name}/", tiny_model)
    result, state = run_local(tmp_path, "EXP-0002-bert-vs-distilbert", "train.hyperparameters.epochs=1",
                              "models.0.max_length=32", "models.1.max_length=32", "gate.threshold=0.0")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert {s["status"] for n, s in state["steps"].items() if n != "MetricBelowThreshold"} == {"Succeeded"}
    logs = tmp_path / "runs" / state["execution_id"] / "logs"
    assert (logs / "Train-bert.algo-2.log").is_file()  # the second host of the same job
    assert "--num_machines 2" in (logs / "Train-bert.log").read_text()
    assert "DataSource s3://acme-raw/tickets/2026-11/: 1 objects, listing" in result.stdout


def test_the_tuning_example_tunes_and_reuses_its_cached_tuning_job(tmp_path, tiny_model):
    store = LocalStore(tmp_path / "store")
    seed(store, "s3://acme-raw/reviews/", make_texts(30), "text", "label")
    seed_model(store, "s3://acme-ml-models/all-MiniLM-L6-v2/", tiny_model)
    shrink = ["tune.max_jobs=2", "tune.max_parallel_jobs=1", "models.0.max_length=32", "gate.threshold=0.0",
              "train.hyperparameters.epochs=1"]
    result, state = run_local(tmp_path, "EXP-0003-tuning-minilm", *shrink)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert state["steps"]["Tune-minilm"]["status"] == "Succeeded"
    again, state = run_local(tmp_path, "EXP-0003-tuning-minilm", *shrink, "--from", "Evaluate")
    assert again.returncode == 0, again.stdout[-4000:]
    assert state["steps"]["Tune-minilm"]["status"] == "Cached" and state["steps"]["Evaluate"]["status"] == "Succeeded"
