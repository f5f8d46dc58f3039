"""Unpadded training (steps/training/packed.py) against the HF model on padded batches, on CPU: the flash
kernel is CUDA's (tests/test_gpu_packed.py), the row-at-a-time attention stands in for it here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from tiny import make_model, make_texts, write_jsonl
from transformers import AutoModelForSequenceClassification

from steps.inference import packed as inference_packed
from steps.inference.batching import collate as padded_collate
from steps.training import packed

ROWS = [{"input_ids": ids, "labels": label, "doc_id": i}
        for i, (ids, label) in enumerate([([2, 17, 40, 9, 3], 0), ([2, 8, 3], 1), (list(range(2, 70)) + [3], 1)])]


@pytest.fixture(scope="module")
def hf(tmp_path_factory) -> Path:
    """A tiny BERT without dropout: packed and padded batches must then give the same numbers."""
    from transformers import AutoConfig

    torch.manual_seed(0)
    folder = make_model(tmp_path_factory.mktemp("packed-train") / "hf", [r["text"] for r in make_texts(10)])
    config = AutoConfig.from_pretrained(str(folder))
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.problem_type = "single_label_classification"
    config.save_pretrained(str(folder))
    return folder


def test_packed_batch_lays_rows_end_to_end_and_pads_to_a_segment_of_its_own():
    batch = packed.collate(pad_id=0, multiple=16)(ROWS)
    real = [t for r in ROWS for t in r["input_ids"]]
    assert len(real) == 77 and batch["input_ids"].shape == (80,)
    assert batch["input_ids"][:77].tolist() == real and batch["input_ids"][77:].tolist() == [0, 0, 0]
    assert batch["cu_seqlens"].tolist() == [0, 5, 8, 77, 80] and batch["cu_seqlens"].dtype == torch.int32
    assert batch["position_ids"].tolist() == [*range(5), *range(3), *range(69), *range(3)]
    assert batch["cls_index"].tolist() == [0, 5, 8] and batch["lengths"].tolist() == [5, 3, 69]
    assert batch["labels"].tolist() == [0, 1, 1] and batch["doc_id"].tolist() == [0, 1, 2]
    exact = packed.collate(pad_id=0, multiple=8)(ROWS[:2])  # 8 tokens: no padding segment
    assert exact["cu_seqlens"].tolist() == [0, 5, 8]


def test_the_bucket_setting_sets_the_padding_multiple_and_a_bad_one_says_how_to_fix_it(monkeypatch):
    from steps.core.common import StepError

    monkeypatch.setenv(packed.BUCKET, "32")
    assert packed.collate(pad_id=0)(ROWS)["input_ids"].shape == (96,)  # 77 tokens up to a multiple of 32
    monkeypatch.delenv(packed.BUCKET)
    assert packed.collate(pad_id=0)(ROWS)["input_ids"].shape == (128,)  # the default multiple, 64
    for bad in ("0", "-8", "big", "5.5"):
        monkeypatch.setenv(packed.BUCKET, bad)
        with pytest.raises(StepError, match=f"SMPIPE_TRAIN_PACKED_MULTIPLE='{bad}' is not a positive whole number"):
            packed.collate(pad_id=0)


def loss_and_grads(model, forward) -> tuple[float, dict]:
    model.zero_grad()
    loss = forward().loss
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_packed_forward_and_backward_give_the_padded_models_loss_and_gradients(hf):
    model = AutoModelForSequenceClassification.from_pretrained(str(hf)).train()
    ours = packed.PackedClassifier(model, max_len=69, attention=inference_packed.padded_attention)
    batch = packed.collate(pad_id=0)(ROWS)
    batch.pop("doc_id"), batch.pop("lengths")
    padded = padded_collate(0)(ROWS)
    padded.pop("doc_id")
    got_loss, got = loss_and_grads(model, lambda: ours(**batch))
    want_loss, want = loss_and_grads(model, lambda: model(**padded))
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    assert got.keys() == want.keys() and len(got) > 20
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-4, msg=name)


def test_the_wrapper_holds_the_models_own_modules_under_the_same_names(hf):
    model = AutoModelForSequenceClassification.from_pretrained(str(hf))
    ours = packed.PackedClassifier(model, max_len=8)
    assert list(ours.state_dict()) == list(model.state_dict())
    assert all(a is b for a, b in zip(ours.parameters(), model.parameters(), strict=True))


def test_jobs_and_models_that_train_on_padded_batches_say_why(hf, monkeypatch):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(hf))
    monkeypatch.setattr(inference_packed, "varlen", lambda: object())  # as if torch had the kernel
    monkeypatch.delenv(packed.ENV, raising=False)
    assert "SMPIPE_TRAIN_PACKED=1 turns unpadded batches on" in packed.unsupported(model, "cuda", 1)
    monkeypatch.setenv(packed.ENV, "1")
    assert packed.unsupported(model, "cuda", 1) is None
    assert packed.unsupported(model, "cuda", 1, "fp16") is None
    assert "mixed precision 'no'" in packed.unsupported(model, "cuda", 1, "no")
    assert "no GPU" in packed.unsupported(model, "cpu", 1)
    assert "2 processes" in packed.unsupported(model, "cuda", 2)
    model.config.problem_type = "multi_label_classification"
    assert "multi_label" in packed.unsupported(model, "cuda", 1)
    distil = DistilBertForSequenceClassification(DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64))
    assert "distilbert" in packed.unsupported(distil, "cuda", 1)
    monkeypatch.setattr(inference_packed, "varlen", lambda: None)
    assert "varlen" in packed.unsupported(AutoModelForSequenceClassification.from_pretrained(str(hf)), "cuda", 1)


def test_the_log_line_names_the_layout_and_the_dropout_it_leaves_out(hf):
    model = AutoModelForSequenceClassification.from_pretrained(str(hf))
    model.config.attention_probs_dropout_prob = 0.1
    line = packed.note(model, None)
    assert line.startswith("unpadded batches") and "dropout 0.1 is not applied" in line and f"unset {packed.ENV}" in line
    assert packed.note(model, "no GPU") == "padded batches (no GPU)"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, hf) -> Path:
    import subprocess

    root = tmp_path_factory.mktemp("packed-prepared")
    write_jsonl(root / "rec" / "data.jsonl", [{"doc_id": i, **r} for i, r in enumerate(make_texts(20, words=20))])
    (root / "pre").mkdir()
    (root / "pre" / "m").symlink_to(hf)
    subprocess.run([sys.executable, "-m", "steps.prepare", "--input", str(root / "rec"), "--pretrained",
                    str(root / "pre"), "--output", str(root / "out"), "--model", "m:24:head:0:"], cwd=ROOT, check=True,
                   capture_output=True)
    return root / "out" / "m"


def one_epoch(tmp: Path, prepared: Path, hf: Path) -> tuple[dict, object]:
    from accelerate.state import AcceleratorState

    from steps import train

    AcceleratorState._reset_state(True)
    args = train.parse_args(["--data-dir", str(prepared), "--pretrained", str(hf), "--model-dir", str(tmp / "model"),
                             "--checkpoint-dir", str(tmp / "ckpt"), "--epochs", "1", "--batch-size", "8",
                             "--learning-rate", "0.001", "--torch-compile", "false", "--seed", "3"])
    t = train.build(args)
    metrics, _ = train.train_epoch(t, 1)
    return metrics, t


def test_an_epoch_on_packed_batches_trains_exactly_like_one_on_padded_batches(tmp_path, prepared, hf, monkeypatch,
                                                                              capsys):
    monkeypatch.setenv(packed.ENV, "1")
    padded, t = one_epoch(tmp_path / "padded", prepared, hf)
    assert not isinstance(t.model, packed.PackedClassifier)
    assert "padded batches (mixed precision 'no'" in capsys.readouterr().out  # a CPU job trains in fp32
    monkeypatch.setattr(packed, "unsupported", lambda *args: None)
    monkeypatch.setattr(inference_packed, "flash_attention", inference_packed.padded_attention)
    unpadded, t = one_epoch(tmp_path / "unpadded", prepared, hf)
    assert isinstance(t.model, packed.PackedClassifier) and t.step == len(t.train_loader) > 3
    assert "unpadded batches" in capsys.readouterr().out
    for name in ("train:loss", "validation:loss", "validation:accuracy", "validation:macro_f1"):
        assert unpadded[name] == pytest.approx(padded[name], rel=1e-4, abs=1e-6), name
    assert padded["train:loss"] != pytest.approx(padded["validation:loss"], rel=1e-3)  # the numbers are not constant
