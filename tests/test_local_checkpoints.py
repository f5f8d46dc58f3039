"""Spot checkpoints through the local executor: each execution trains on its own, a killed execution
retried resumes its own training, and tuning trials never share a checkpoint folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from tiny import make_texts, write_jsonl

from steps.core import faults

SPEC = """\
name: {name}
base: templates/text-classification.yaml
data: {{source: {data}}}
models:
  - {{name: tiny, source: {model}, max_length: 32}}
resources:
  training: {{instance_type: local, spot: true}}
  processing: {{instance_type: local}}
steps: {{reconcile: false, evaluate: false, register: false, tune: {tune}}}
train: {{hyperparameters: {{epochs: 2, batch_size: 16, precision: fp32, seed: 7}}}}
"""
TUNE = 'tune: {ranges: {learning_rate: "1e-4->3e-3"}, strategy: Random, max_jobs: 2, max_parallel_jobs: 2}\n'



def cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model) -> dict:
    root = tmp_path_factory.mktemp("spot")
    write_jsonl(root / "raw" / "data.jsonl", make_texts(30))
    specs = {}
    for name, tune in (("EXP-0101-spot", "false"), ("EXP-0102-spot-tuning", "true")):
        spec = root / name / "experiment.yaml"
        spec.parent.mkdir()
        spec.write_text(SPEC.format(name=name, data=root / "raw", model=tiny_model, tune=tune)
                        + (TUNE if tune == "true" else ""), encoding="utf-8")
        specs[name] = spec
    return {"specs": specs, "store": root / "store", "runs": root / "runs"}


def local(world, spec: str, *extra: str, env=None) -> subprocess.CompletedProcess:
    return cli("local", str(world["specs"][spec]), "--store", str(world["store"]), "--runs", str(world["runs"]),
               *extra, env=env)


def execution_id(result: subprocess.CompletedProcess) -> str:
    return next(w.rstrip(":") for w in result.stdout.split() if w.startswith("local-"))


def train_state(world, execution: str, step: str = "Train-tiny") -> dict:
    return json.loads((world["runs"] / execution / "state.json").read_text())["steps"][step]


def log(world, execution: str, step: str = "Train-tiny") -> str:
    return (world["runs"] / execution / "logs" / f"{step}.log").read_text()


def checkpoints(world, execution: str) -> Path:
    prefix = world["store"] / "smpipe-local" / "experiments" / "EXP-0101-spot" / "runs"
    return prefix / execution / "checkpoints" / "tiny"


def test_executions_train_on_their_own_and_a_killed_one_resumes_when_retried(world):
    # Killed after epoch 1: its checkpoint reached the store while the job ran.
    killed = local(world, "EXP-0101-spot", "--param", "LearningRate=0.001", env={faults.STOP_AFTER_EPOCH: "1"})
    assert killed.returncode == 1, killed.stdout[-3000:]
    a = execution_id(killed)
    assert json.loads((checkpoints(world, a) / "progress.json").read_text())["epoch"] == 1
    assert "stopping after epoch 1" in killed.stdout  # the log tail reaches the terminal

    retried = ok(local(world, "EXP-0101-spot", "--retry", a))
    assert f"retrying execution {a}" in retried.stdout and "= Prepare: kept from the earlier attempt" in retried.stdout
    assert "resuming after epoch 1 of 2" in log(world, a)
    assert json.loads((checkpoints(world, a) / "progress.json").read_text())["epoch"] == 2

    # A new execution with another learning rate trains from the start, in its own checkpoint folder.
    second = ok(local(world, "EXP-0101-spot", "--param", "LearningRate=0.003"))
    b = execution_id(second)
    assert "resuming" not in log(world, b) and "epoch 2" in log(world, b)
    assert train_state(world, a)["properties"]["metrics"] != train_state(world, b)["properties"]["metrics"]
    assert (checkpoints(world, b) / "progress.json").is_file()

    # The same settings uninterrupted (no cache: it must train) end with the retried execution's metrics.
    straight = ok(local(world, "EXP-0101-spot", "--no-cache", "--param", "LearningRate=0.001"))
    c = execution_id(straight)
    assert "resuming" not in log(world, c)
    straight_metrics, resumed_metrics = (validation(train_state(world, e)) for e in (c, a))
    assert len(resumed_metrics) == 4 and resumed_metrics == pytest.approx(straight_metrics, rel=1e-4, abs=1e-5)


def validation(state: dict) -> dict:
    return {k: v for k, v in state["properties"]["metrics"].items() if k.startswith("validation:")}


def test_retry_refuses_new_parameters_and_unknown_executions(world):
    result = local(world, "EXP-0101-spot", "--retry", "local-nope")
    assert result.returncode == 2 and "no execution 'local-nope' to retry" in result.stderr
    assert "Traceback" not in result.stderr


def test_tuning_trials_with_spot_do_not_share_checkpoints(world):
    result = ok(local(world, "EXP-0102-spot-tuning"))
    execution = execution_id(result)
    prefix = world["store"] / "smpipe-local" / "experiments" / "EXP-0102-spot-tuning" / "runs" / execution
    trials = sorted(p.parent.relative_to(prefix).as_posix() for p in prefix.rglob("progress.json"))
    assert len(trials) == 2 and trials[0].split("/")[2] != trials[1].split("/")[2]
    for trial in trials:  # checkpoints/<model>/<trial job>/<the trial's own job name>
        assert trial.startswith("checkpoints/tiny/Tune-tiny-00")


def test_a_killed_executor_keeps_the_finished_epochs_and_resumes_them(world):
    """kill -9 of the whole local run while training: what was synced survives, a retry resumes it."""
    env = {**os.environ, faults.HANG_AFTER_EPOCH: "1", "SMPIPE_CHECKPOINT_SYNC_S": "0.5"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "local", str(world["specs"]["EXP-0101-spot"]),
                             "--store", str(world["store"]), "--runs", str(world["runs"]), "--no-cache",
                             "--param", "LearningRate=0.0007"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    execution = next(w.rstrip(":") for w in proc.stdout.readline().split() if w.startswith("local-"))
    progress = checkpoints(world, execution) / "progress.json"
    deadline = time.monotonic() + 120
    while not (progress.is_file() and json.loads(progress.read_text())["epoch"] == 1):
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint reached the store"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the executor, the job and its training process, at once
    proc.wait()
    retried = ok(local(world, "EXP-0101-spot", "--retry", execution))
    assert "resuming after epoch 1 of 2" in log(world, execution), retried.stdout[-2000:]
    assert json.loads(progress.read_text())["epoch"] == 2
