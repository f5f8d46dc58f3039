"""`make plan` / `make validate` with local data: each model's real rows (by the pipeline's own Reconcile and
Prepare, through the cache), its steps per epoch, a max_steps cut, and a time measured on this machine."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import Counter

import pytest
from conftest import ROOT
from test_long_documents import long_corpus
from tiny import write_jsonl

pytestmark = pytest.mark.slow
SPEC = """\
name: EXP-0120-count-rows
base: templates/text-classification.yaml
data: {{source: {data}, splits: {{train: 0.6, validation: 0.2, test: 0.2}}}}
models:
  - {{name: head, source: {model}, max_length: 32}}
  - {{name: slide, source: {model}, max_length: 32, long_documents: sliding, stride: 8, max_windows: 3,
     hyperparameters: {{max_steps: 2}}}}
resources: {{training: {{instance_type: local}}, processing: {{instance_type: local}}, evaluation: {{instance_type: local}}}}
train: {{hyperparameters: {{epochs: 2, batch_size: 4, precision: fp32}}}}
gate: {{threshold: 0.0}}
register: {{group: count-group}}
"""


def cli(root, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args, "--count-rows", "--store", str(root / "store"),
                           "--runs", str(root / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def counted(tmp_path_factory, tiny_model) -> dict:
    root = tmp_path_factory.mktemp("count")
    write_jsonl(root / "raw" / "data.jsonl", long_corpus())
    spec = root / "EXP-0120-count-rows" / "experiment.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC.format(data=root / "raw", model=tiny_model), encoding="utf-8")
    first = cli(root, "plan", str(spec))
    return {"root": root, "spec": spec, "first": first, "again": cli(root, "validate", str(spec))}


def windows_of_training_documents(root, model: str) -> Counter:
    """Stored training windows per document, read from the prepared dataset itself."""
    from datasets import load_from_disk

    folder = next((root / "store").glob(f"smpipe-local/experiments/*/runs/*/data/prepared/{model}"))
    return Counter(load_from_disk(str(folder))["train"]["doc_id"])


def test_plan_counts_the_real_rows_and_steps_of_each_model(counted):
    first = counted["first"]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "data (counted by this spec's Reconcile and Prepare, run here" in out
    per_doc = windows_of_training_documents(counted["root"], "slide")
    capped = sum(min(n, 3) for n in per_doc.values())
    assert capped < sum(per_doc.values())  # the cap is what an epoch reads, not the bound documents x 3
    assert re.search(rf"^  slide: 30 documents → rows train {sum(per_doc.values()):,}, .*; {capped:,} training rows "
                     r"per epoch \(max_windows 3\)$", out, re.M), out
    steps = math.ceil(capped / 4)
    assert f"    {steps:,} steps per epoch at batch_size 4, 2 steps in all; max_steps 2 stops it in epoch 1 of 2" in out
    head = len(windows_of_training_documents(counted["root"], "head"))
    assert f"    {math.ceil(head / 4)} steps per epoch at batch_size 4, {2 * math.ceil(head / 4)} steps in all\n" in out
    assert re.search(r"on this machine \((cpu|cuda), fp32, rows of \d+ tokens: [0-9,.]+ training and [0-9,.]+ "
                     r"validation rows/s, measured .*\): about \dm\d\ds of training and validation", out), out
    assert "▶ Prepare (Processing) runs" in first.stderr  # the executor's lines, not the plan's
    state = json.loads(sorted((counted["root"] / "runs").glob("local-*/state.json"))[0].read_text())  # plan's
    ran = {name for name, step in state["steps"].items() if step["status"] == "Succeeded"}
    assert ran == {"Reconcile", "Prepare"} and state["steps"]["Train-head"]["reason"] == "not needed for Prepare"


def test_validate_reuses_the_counted_rows_and_the_measured_rate(counted):
    again = counted["again"]
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "↺ Prepare: cached" in again.stderr and "valid (2 model(s), training)" in again.stdout
    rates = json.loads((counted["root"] / "runs" / "estimates.json").read_text())
    assert len(rates) == 1  # both models share the weights, max_length and batch size: measured once
    lines = [line for line in counted["first"].stdout.splitlines() if "rows/s" in line]
    assert lines and all(line in again.stdout for line in lines)


def test_data_on_s3_is_not_counted(tmp_path):
    done = cli(tmp_path, "plan", str(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert"))
    assert done.returncode == 0 and "data (counted" not in done.stdout and not (tmp_path / "runs").exists()
