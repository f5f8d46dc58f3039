"""GPU: the unpadded inference pass (steps/inference/packed.py) with torch's variable-length flash kernel
gives the padded HF model's logits. Run on a GPU machine: pytest -m gpu tests/test_gpu_packed.py."""

from __future__ import annotations

import pytest
from tiny import make_model, make_texts

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]


@pytest.mark.parametrize("compiled", ["0", "1"])
def test_flash_unpadded_pass_matches_the_padded_model_in_bf16(tmp_path, monkeypatch, compiled):
    from transformers import AutoModelForSequenceClassification

    from steps.inference import packed
    from steps.inference.batching import TokenMatrix

    monkeypatch.setenv(packed.COMPILE, compiled)
    torch.manual_seed(0)
    hf = make_model(tmp_path / "hf", [r["text"] for r in make_texts(10)], layers=2, hidden=128)
    ours, why = packed.build(hf, "cuda", torch.bfloat16)
    assert why is None, why
    assert (ours.tail is not None) == (compiled == "1")
    generator, vocab = torch.Generator().manual_seed(1), ours.bert.embeddings.word_embeddings.num_embeddings
    rows = [[2, *torch.randint(5, vocab, (n,), generator=generator).tolist(), 3] for n in (1, 7, 130, 33, 511 - 2)]
    matrix = TokenMatrix.from_rows(rows)
    batch, padded = matrix.packed(range(len(rows))), matrix.batch(list(range(len(rows))), pad_id=0)
    model = AutoModelForSequenceClassification.from_pretrained(str(hf), dtype=torch.bfloat16,
                                                               attn_implementation="sdpa").cuda().eval()
    with torch.inference_mode():
        got = ours(batch["ids"].cuda(), batch["positions"].cuda(), batch["cu"].cuda(), batch["max_len"]).float()
        expected = model(**{k: v.cuda() for k, v in padded.items()}).logits.float()
    assert got.shape == expected.shape == (len(rows), model.config.num_labels)
    assert (got - expected).abs().max() <= 0.05 * max(1.0, float(expected.abs().max()))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_flash_unpadded_training_step_gives_the_padded_models_loss_and_gradients(tmp_path, monkeypatch, compiled):
    """fp32 weights under bf16 autocast, as accelerate trains; dropout off so both layouts compute the same."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from steps.inference.batching import collate
    from steps.training import packed

    torch.manual_seed(0)
    hf = make_model(tmp_path / "hf", [r["text"] for r in make_texts(10)], layers=2, hidden=128)
    config = AutoConfig.from_pretrained(str(hf), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                        problem_type="single_label_classification")
    model = AutoModelForSequenceClassification.from_pretrained(str(hf), config=config,
                                                               attn_implementation="sdpa").cuda().train()
    monkeypatch.setenv(packed.ENV, "1")
    assert packed.unsupported(model, "cuda", 1) is None
    generator, vocab = torch.Generator().manual_seed(1), config.vocab_size
    rows = [{"input_ids": [2, *torch.randint(5, vocab, (n,), generator=generator).tolist(), 3], "labels": i % 2,
             "doc_id": i} for i, n in enumerate((1, 7, 130, 33, 509))]
    ours = packed.PackedClassifier(model, max_len=511)
    forward = torch.compile(ours, dynamic=True) if compiled else ours
    batch = {k: v.cuda() for k, v in packed.collate(0)(rows).items() if k not in ("doc_id", "lengths")}
    padded = {k: v.cuda() for k, v in collate(0)(rows).items() if k != "doc_id"}

    def step(fn):
        model.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fn().loss
        loss.backward()
        return float(loss.detach()), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    got_loss, got = step(lambda: forward(**batch))
    want_loss, want = step(lambda: model(**padded))
    assert got_loss == pytest.approx(want_loss, rel=0.02)
    assert got.shape == want.shape
    cosine = torch.nn.functional.cosine_similarity(got.float(), want.float(), dim=0)
    assert cosine > 0.99, float(cosine)
