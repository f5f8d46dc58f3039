"""The pieces behind the speed figures: FLOP count, the steady-state meter, vectorised padding,
token-budget batches, and the benchmark report's target arithmetic."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from steps.inference import batching, planner  # noqa: E402
from steps.training import throughput  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BERT_BASE = {"non_embedding_params": 85_054_464, "layers": 12, "hidden": 768}


def test_training_flops_match_the_published_bert_base_figures():
    # performance-anchors: 6.70e10 training FLOPs per 128-token sequence, 2.90e11 at 512
    assert throughput.training_flops(BERT_BASE, 128, 128**2) == pytest.approx(6.70e10, rel=0.01)
    assert throughput.training_flops(BERT_BASE, 512, 512**2) == pytest.approx(2.90e11, rel=0.01)


def test_model_shape_counts_only_non_embedding_parameters():
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64))
    shape = throughput.model_shape(model)
    embeddings = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    assert shape["layers"] == 2 and shape["hidden"] == 32
    assert shape["non_embedding_params"] == sum(p.numel() for p in model.parameters()) - embeddings


def test_peak_is_known_only_for_listed_gpus():
    assert throughput.peak_flops("NVIDIA H200") == throughput.peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert throughput.peak_flops("cpu") is None


def test_meter_counts_real_tokens_after_the_warm_up_only():
    meter = throughput.Meter(BERT_BASE, "NVIDIA H100", processes=2, warmup=2)
    full, half = torch.ones(4, 8, dtype=torch.long), torch.ones(4, 8, dtype=torch.long)
    half[:, 4:] = 0
    for mask in (full, full, half, half):  # the first two batches are warm-up
        meter.batch(mask.sum(1), mask.numel())
        meter.step(lambda: None)
    speed = meter.stop(lambda: None, reduce=lambda values: [2 * v for v in values])  # two identical processes
    assert speed["steps"] == 2 and speed["padding_efficiency"] == 0.5
    assert speed["tokens_per_second"] * speed["seconds"] == pytest.approx(2 * 2 * 4 * 4)
    flops = throughput.training_flops(BERT_BASE, 64, 16 * 4**2)  # 16 rows of 4 real tokens
    assert speed["mfu"] == pytest.approx(flops / speed["seconds"] / (989.4e12 * 2))


def test_meter_without_a_full_window_reports_nothing():
    meter = throughput.Meter(BERT_BASE, "cpu", processes=1, warmup=5)
    meter.batch(torch.full((2,), 4), 8)
    meter.step(lambda: None)
    assert meter.stop(lambda: None) is None


def dataset(rows: list[list[int]]):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": rows, "labels": [0] * len(rows)})


def test_token_matrix_pads_like_the_training_collate():
    rows = [[5, 6, 7], [8], list(range(10, 21))]
    matrix = batching.TokenMatrix.from_dataset(dataset(rows))
    assert matrix.lengths.tolist() == [3, 1, 11] and batching.row_lengths(dataset(rows)) == [3, 1, 11]
    fast = matrix.batch([2, 0], pad_id=0)
    slow = batching.collate(0)([{"input_ids": rows[i], "labels": 0, "doc_id": i} for i in (2, 0)])
    assert torch.equal(fast["input_ids"], slow["input_ids"]) and torch.equal(fast["attention_mask"], slow["attention_mask"])
    assert fast["input_ids"].shape == (2, 16)


def test_token_budget_batches_cover_every_row_once_within_budget():
    lengths = [3, 120, 40, 512, 7, 64, 64, 9, 300, 1]
    batches = planner.plan(lengths, tokens=600, rows=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        width = -(-max(lengths[i] for i in b) // 8) * 8
        assert len(b) <= 3 and (len(b) == 1 or len(b) * width <= 600)
    assert [lengths[i] for b in batches for i in b] == sorted(lengths)  # short rows first, little padding


def test_bench_summary_computes_ratios_against_the_targets(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench import report

    results = {"train/ours/full128/1gpu": {"samples_per_second": 4000.0, "mfu": 0.41, "tokens_per_second": 512000.0},
               "train/trainer-bf16/full128": {"samples_per_second": 1600.0},
               "train/ours/full128/2gpu": {"samples_per_second": 7000.0},
               "infer/ours/docs": {"rows_per_second": 9000.0}, "infer/batch1/docs": {"rows_per_second": 300.0},
               "train/trainer-bf16/full512": {"error": "boom"}}
    summary = report.summarise(results)
    assert summary["train full128: ours / Trainer bf16 (samples/s)"] == {"value": 2.5, "target": 2.5, "met": True}
    assert summary["2-GPU scaling full128"]["value"] == pytest.approx(0.875) and not summary["2-GPU scaling full128"]["met"]
    assert summary["inference docs: ours / batch-1 TorchScript (rows/s)"]["value"] == pytest.approx(30.0)
    assert summary["train full512: ours / Trainer bf16 (samples/s)"]["met"] is None  # one side missing: no verdict
    env = {"date": "2026-11-22T00:00:00", "gpus": ["NVIDIA H200"], "torch": "2", "cuda": "13", "transformers": "5",
           "accelerate": "1", "python": "3.12", "cpus": 16, "side_by_side": False, "quick": False,
           "result": str(tmp_path / "2026-11-22-abc-h200-gpu.json")}
    path = report.write(tmp_path, env, results, summary, {"full128": (128, 64, 170, 120)})
    assert path == tmp_path / "2026-11-22-abc-h200-gpu"  # the run's own file, named when it started
    assert json.loads(path.with_suffix(".json").read_text())["summary"] == summary
    md = path.with_suffix(".md").read_text()
    assert "| 2-GPU scaling full128 | 0.88 | ≥ 0.92 | no |" in md and "failed: boom" in md


@pytest.mark.parametrize(("lengths", "world", "expected"), [
    ([128, 128, 128], "2", {"backend": "INDUCTOR", "use_regional_compilation": False, "dynamic": None}),
    ([12, 128, 40], "1", {"backend": "INDUCTOR", "use_regional_compilation": False, "dynamic": True}),
    ([12, 128, 40], "2", {"backend": "INDUCTOR", "use_regional_compilation": True, "dynamic": None}),
])
def test_compile_mode_follows_the_data_and_the_process_count(monkeypatch, lengths, world, expected):
    from argparse import Namespace

    from steps.training import setup as train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.delenv("ACCELERATE_DYNAMO_USE_DYNAMIC", raising=False)
    plugin = train.compile_plugin(Namespace(torch_compile=True), lengths)
    assert {k: getattr(plugin, k) for k in expected} == {**expected, "backend": plugin.backend.__class__[expected["backend"]]}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # never on CPU: inductor's C++ build is slow
    assert train.compile_plugin(Namespace(torch_compile=True), lengths).backend.value == "NO"


def test_the_compile_mode_setting_reaches_torch_compile_and_a_bad_one_is_refused_on_cpu_too(monkeypatch):
    from argparse import Namespace

    from steps.core.common import StepError
    from steps.training import setup as train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert train.compile_plugin(Namespace(torch_compile=True), [12, 40]).mode == "default"
    monkeypatch.setenv(train.COMPILE_MODE, "reduce-overhead")
    assert train.compile_plugin(Namespace(torch_compile=True), [12, 40]).mode == "reduce-overhead"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(train.COMPILE_MODE, "fast")
    with pytest.raises(StepError, match="SMPIPE_TRAIN_COMPILE_MODE='fast' is not a torch.compile mode.*reduce-overhead"):
        train.compile_plugin(Namespace(torch_compile=True), [12, 40])
