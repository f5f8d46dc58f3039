"""Long documents: sliding windows bounded per document, re-drawn each epoch, aggregated per document;
the cost shown before training; progress lines in logs that are not a terminal."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from test_steps_train import run, training_sandbox
from tiny import TOPICS, write_jsonl

from pipelines.compile.window_notes import notes, windows_for
from pipelines.spec.load import load
from steps import contract
from steps.core.common import aggregate_windows
from steps.inference.batching import CappedWindows, LengthGroupedBatches


def long_corpus(documents: int = 30, seed: int = 0) -> list[dict]:
    """Documents of 30 to 3,000 words (a few hundred to tens of thousands of characters)."""
    rng = random.Random(seed)
    rows = []
    for i in range(documents):
        label = sorted(TOPICS)[i % len(TOPICS)]
        words = TOPICS[label].split() + "the a of and to in".split()
        rows.append({"doc_id": i, "text": " ".join(rng.choice(words) for _ in range(rng.choice([30, 300, 3000]))),
                     "label": label})
    return rows


def test_capped_windows_bound_rows_spread_evenly_and_redraw_each_epoch():
    doc_ids = [0] * 100 + [1] * 3 + [2] * 40
    capped = CappedWindows(doc_ids, cap=5, seed=1)
    first, second = capped.rows(1), capped.rows(2)
    assert len(capped) == len(first) == 5 + 3 + 5
    assert first != second and capped.rows(1) == first  # redrawn per epoch, reproducible
    doc0 = sorted(r for r in first if r < 100)
    assert len(doc0) == 5 and all(20 * j <= r < 20 * (j + 1) for j, r in enumerate(doc0))  # one per fifth of it
    assert [r for r in first if 100 <= r < 103] == [100, 101, 102]  # short documents keep every window
    sampler = LengthGroupedBatches([10] * len(doc_ids), 4, seed=0, windows=capped)
    assert len(sampler) == 4 and sum(len(b) for b in sampler.batches()) == 13


def test_window_aggregations():
    docs = [7, 7, 7, 3]
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 1.5], [0.0, 3.0]])
    ids, mean, labels = aggregate_windows(docs, logits, [1, 1, 1, 0])
    assert ids.tolist() == [3, 7] and labels.tolist() == [0, 1]
    assert mean[1].tolist() == pytest.approx([2 / 3, 2.5 / 3])
    assert aggregate_windows(docs, logits, [1, 1, 1, 0], "max")[1][1].tolist() == [2.0, 1.5]
    vote = aggregate_windows(docs, logits, [1, 1, 1, 0], "vote")[1][1]
    assert vote.argmax() == 1 and vote[1] == pytest.approx(2 / 3, abs=1e-4)


@pytest.fixture(scope="module")
def prepared_long(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("long")
    write_jsonl(root / "rec" / "data.jsonl", long_corpus())
    (root / "pre").mkdir()
    (root / "pre" / "slide").symlink_to(tiny_model)
    log = run([sys.executable, "-m", "steps.prepare", "--input", str(root / "rec"), "--pretrained", str(root / "pre"),
               "--output", str(root / "out"), "--model", "slide:32:sliding:8::3:mean", "--splits", "0.6,0.2,0.2"],
              env={"SMPIPE_PROGRESS_S": "0"})
    (root / "prepare.log").write_text(log.stdout + log.stderr)
    return root


def test_prepare_reports_the_cost_and_keeps_each_document_in_one_split(prepared_long):
    results = json.loads((prepared_long / "out" / "prepare_results.json").read_text())
    stats = results["models"]["slide"]
    assert stats["documents"] == 30 and stats["windows_per_document"]["max"] > 50
    assert stats["training_rows_per_epoch"] <= results["documents"]["train"] * 3 < stats["rows"]["train"]
    from datasets import load_from_disk

    data = load_from_disk(str(prepared_long / "out" / "slide"))
    splits = {name: set(data[name]["doc_id"]) for name in ("train", "validation", "test")}
    assert not (splits["train"] & splits["validation"] or splits["train"] & splits["test"]
                or splits["validation"] & splits["test"])
    assert sum(map(len, splits.values())) == 30
    log = (prepared_long / "prepare.log").read_text()
    assert "prepare slide: tokenising: started, 30 documents" in log and "documents (" in log and "left)" in log


def test_training_reads_at_most_the_cap_and_metrics_are_per_document(prepared_long, tiny_model, tmp_path):
    hp = {"epochs": "2", "batch_size": "8", "learning_rate": "0.003", "model_name": "slide", "seed": "1"}
    opt_ml = training_sandbox(tmp_path / "t", prepared_long / "out" / "slide", tiny_model, hp)
    log = run([sys.executable, "-m", "steps.launcher", "train"], env={contract.OPT_ML_ENV: str(opt_ml)}).stdout
    stats = json.loads((prepared_long / "out" / "prepare_results.json").read_text())["models"]["slide"]
    rows = stats["training_rows_per_epoch"]
    assert f"{rows:,} training rows" not in log  # the line counts every stored window ...
    assert f"{-(-rows // 8):,} batches per epoch" in log  # ... the epoch reads only the capped ones
    models = tmp_path / "models" / "slide"
    models.mkdir(parents=True)
    import tarfile

    with tarfile.open(models / "model.tar.gz", "w:gz") as tar:
        for path in (opt_ml / "model").iterdir():
            tar.add(path, arcname=path.name)
    run([sys.executable, "-m", "steps.evaluate", "--model", "slide", "--prepared", str(prepared_long / "out"),
         "--models-dir", str(tmp_path / "models"), "--output", str(tmp_path / "eval")])
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    test_docs = json.loads((prepared_long / "out" / "split.json").read_text())["test"]
    assert evaluation["models"]["slide"]["documents"] == len(test_docs) == 6  # documents, not windows


def test_plan_and_validate_say_what_a_strategy_costs(write_spec):
    from conftest import MINIMAL

    spec = load(write_spec(MINIMAL.replace("bert/}", "bert/, long_documents: sliding, max_length: 128, stride: 32, "
                                           "max_windows: 0}"))).spec
    [line] = notes(spec)
    assert line.startswith("warning: models[0] (bert)") and f"{windows_for(150_000, 128, 32):,} windows" in line
    capped = load(write_spec(MINIMAL.replace("bert/}", "bert/, long_documents: sliding}"))).spec
    assert "at most 8 windows of a document per epoch" in notes(capped)[0]
    assert windows_for(100, 128, 32) == 1 and windows_for(1000, 128, 32) == 11
