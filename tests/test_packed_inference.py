"""The unpadded inference pass (steps/inference/packed.py) against the HF model and the padded trace, on CPU:
the flash kernel itself is CUDA's (tests/test_gpu_packed.py), the row-at-a-time attention stands in for it here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import make_model, make_texts
from transformers import AutoModelForSequenceClassification

from steps.inference import packed, torchscript
from steps.inference.batching import TokenMatrix

ROWS = [[2, 17, 40, 9, 3], [2, 8, 3], [2, 50, 51, 52, 53, 54, 55, 56, 57, 3], [2, 3]]


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    torch.manual_seed(0)
    return make_model(tmp_path_factory.mktemp("packed") / "hf", [r["text"] for r in make_texts(10)], layers=2)


def padded_logits(model, rows):
    batch = TokenMatrix.from_rows(rows).batch(list(range(len(rows))), pad_id=0)
    with torch.inference_mode():
        return model(**batch).logits


def test_packed_rows_hold_every_token_at_its_position_and_the_cumulative_lengths():
    batch = TokenMatrix.from_rows(ROWS).packed([2, 0, 3])
    assert batch["ids"].tolist() == ROWS[2] + ROWS[0] + ROWS[3]
    assert batch["positions"].tolist() == [*range(10), *range(5), *range(2)]
    assert batch["cu"].tolist() == [0, 10, 15, 17] and batch["cu"].dtype == torch.int32
    assert batch["max_len"] == 10


@pytest.mark.parametrize("tail", [None, packed.tail], ids=["layer-modules", "one-function-tail"])
def test_unpadded_pass_gives_the_hf_models_logits_for_rows_of_different_lengths(hf, tail):
    model = AutoModelForSequenceClassification.from_pretrained(str(hf)).eval()
    ours = packed.PackedBert(model, packed.padded_attention, tail).eval()
    batch = TokenMatrix.from_rows(ROWS).packed(list(range(len(ROWS))))
    with torch.inference_mode():
        got = ours(batch["ids"], batch["positions"], batch["cu"], batch["max_len"])
    expected = padded_logits(model, ROWS)
    assert got.shape == expected.shape == (len(ROWS), model.config.num_labels)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


def test_hosts_and_models_the_unpadded_pass_cannot_take_say_why(hf, monkeypatch):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(hf))
    assert "no GPU" in packed.unsupported(config, "cpu")
    if packed.varlen() is not None:
        assert packed.unsupported(config, "cuda") is None
    config.model_type = "roberta"
    assert "roberta" in packed.unsupported(config, "cuda")
    monkeypatch.setenv(packed.ENV, "0")
    assert packed.unsupported(config, "cuda") == f"{packed.ENV}=0"
    assert packed.build(hf.parent / "missing", "cuda", torch.bfloat16)[1].endswith("holds no model")


def trace_of(model):
    batch = TokenMatrix.from_rows(ROWS).batch([0, 1], pad_id=0)
    return torch.jit.trace(model, (batch["input_ids"], batch["attention_mask"]), strict=False)


class Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def choose(hf, ours, capsys):
    """forward_pass on CPU with ``ours`` offered as the unpadded model: (module chosen, its inputs, log)."""
    trace = trace_of(Logits(AutoModelForSequenceClassification.from_pretrained(str(hf)).eval()))
    matrix = TokenMatrix.from_rows(ROWS)
    build = packed.build
    packed.build = lambda *a: (ours, None)
    try:
        with torch.inference_mode():
            module, tensors = torchscript.forward_pass(hf.parent, trace, "cpu", ["input_ids", "attention_mask"],
                                                       matrix, 0, [[1, 3], [2, 0]], "evaluate m")
    finally:
        packed.build = build
    return module, tensors, trace, capsys.readouterr().out


def test_the_unpadded_pass_is_taken_only_where_it_agrees_with_the_trace(hf, capsys):
    model = AutoModelForSequenceClassification.from_pretrained(str(hf)).eval()
    ours = packed.PackedBert(model, packed.padded_attention).eval()
    module, tensors, _, log = choose(hf, ours, capsys)
    assert module is ours and "evaluate m: unpadded pass" in log
    with torch.inference_mode():
        got = module(*tensors([2, 0]))
    np.testing.assert_allclose(got.numpy(), padded_logits(model, [ROWS[2], ROWS[0]]).numpy(), atol=1e-5)

    with torch.no_grad():
        model.classifier.bias += 1.0  # a pass that drifted from the exported model
    module, tensors, trace, log = choose(hf, ours, capsys)
    assert module is trace and "padded TorchScript trace (it differs from the exported trace by" in log
    assert [t.shape for t in tensors([1, 3])] == [(2, 8), (2, 8)]


def test_predict_on_a_cpu_host_says_it_runs_the_padded_trace(tmp_path, hf, capsys):
    from datasets import Dataset

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "hf").symlink_to(hf)
    model = Logits(AutoModelForSequenceClassification.from_pretrained(str(hf)).eval())
    torch.jit.save(trace_of(model), str(folder / "model.pt"))
    logits, _ = torchscript.predict(folder, Dataset.from_dict({"input_ids": ROWS}), 0, what="evaluate m")
    assert "evaluate m: padded TorchScript trace (no GPU" in capsys.readouterr().out
    np.testing.assert_allclose(logits, padded_logits(model.model, ROWS).numpy(), atol=1e-5)
