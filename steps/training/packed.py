"""Unpadded training of a BERT classifier on one GPU: the rows of a batch laid end to end.

The linear layers then compute real tokens only, and attention is torch's variable-length flash kernel
(``varlen_attn``, with its backward), which needs no padding mask. The batch size, the learning rate and
the schedule mean what they mean for padded batches: a batch is the same rows, only laid out differently.
One difference, said in the log: the kernel has no dropout, so attention-probability dropout is not
applied (hidden-state dropout is: every layer's own modules run). Opt-in (``SMPIPE_TRAIN_PACKED=1``) until
its speed and accuracy are measured on a GPU (bench/train_ab.py); padded batches otherwise. Validation,
checkpoints and the saved model are those of the HF model itself: the wrapper holds its modules under the
same names (same state dict).
"""

from __future__ import annotations

import os

import torch

from steps.core.common import StepError
from steps.inference import packed as inference_packed

ENV = "SMPIPE_TRAIN_PACKED"  # 1: unpadded batches where the model and host allow
MULTIPLE = 64  # a batch's tokens are padded up to a multiple of this (one extra segment): aligned matrices
BUCKET = "SMPIPE_TRAIN_PACKED_MULTIPLE"  # a coarser multiple: fewer distinct shapes (CUDA graphs record one each)


def unsupported(model, device: str, processes: int, precision: str = "bf16") -> str | None:
    """Why this model or job trains on padded batches (None: it can train unpadded). ``precision``:
    accelerate's mixed precision ("no", "fp16", "bf16")."""
    if os.environ.get(ENV, "0") != "1":
        return f"{ENV}=1 turns unpadded batches on; off until measured on a GPU"
    if precision not in ("bf16", "fp16"):
        return f"mixed precision {precision!r} (the flash kernel takes bf16 or fp16)"
    if processes > 1:
        return f"{processes} processes (unpadded batches are measured on one GPU only)"
    config = getattr(model, "config", None)
    why = inference_packed.unsupported(config, device) if config is not None else "a model without a config"
    if why:
        return why.replace(inference_packed.ENV, ENV)
    if not all(hasattr(model, name) for name in ("bert", "dropout", "classifier")) or model.bert.pooler is None:
        return f"{type(model).__name__} is not BERT's sequence classifier with a pooler"
    if getattr(config, "problem_type", None) != "single_label_classification":
        return f"problem_type {config.problem_type!r}"
    return None


def bucket() -> int:
    value = os.environ.get(BUCKET) or str(MULTIPLE)
    if not value.isdigit() or int(value) < 1:
        raise StepError(f"{BUCKET}={value!r} is not a positive whole number of tokens: unset it (default {MULTIPLE}) "
                        "or set e.g. 512")
    return int(value)


def collate(pad_id: int, multiple: int | None = None):
    """Rows laid end to end (TokenMatrix.packed), the tokens padded up to ``multiple`` as a segment of their own
    (the kernel reads the cumulative lengths as int32), and where each row's first token is."""
    from steps.inference.batching import TokenMatrix

    multiple = multiple or bucket()

    def fn(rows: list[dict]) -> dict[str, torch.Tensor]:
        rows_packed = TokenMatrix.from_rows([r["input_ids"] for r in rows]).packed(range(len(rows)))
        cu, total = rows_packed["cu"].long(), rows_packed["ids"].shape[0]
        pad = max(multiple, -(-total // multiple) * multiple) - total
        return {"input_ids": torch.cat([rows_packed["ids"], torch.full((pad,), pad_id, dtype=torch.long)]),
                "position_ids": torch.cat([rows_packed["positions"], torch.arange(pad)]),
                "cu_seqlens": torch.cat([cu, cu[-1:] + pad] if pad else [cu]).to(torch.int32),
                "cls_index": cu[:-1], "lengths": torch.diff(cu),
                "labels": torch.as_tensor([r["labels"] for r in rows], dtype=torch.long),
                "doc_id": torch.as_tensor([r["doc_id"] for r in rows], dtype=torch.long)}

    return fn


class PackedClassifier(torch.nn.Module):
    """BertForSequenceClassification's training forward over packed rows -> (loss, logits).

    ``max_len`` bounds every segment (the longest row the data can hold): the kernel sizes its grid by it,
    and a constant keeps one compiled graph for every batch.
    """

    def __init__(self, model, max_len: int, attention=None):
        super().__init__()
        self.bert, self.dropout, self.classifier = model.bert, model.dropout, model.classifier
        self.attention = attention or inference_packed.flash_attention
        self.config, self.max_len = model.config, max(max_len, MULTIPLE)

    def forward(self, input_ids, position_ids, cu_seqlens, cls_index, labels=None, lengths=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        x = self.bert.embeddings(input_ids=input_ids[None], position_ids=position_ids[None],
                                 token_type_ids=torch.zeros_like(input_ids)[None])[0]
        for layer in self.bert.encoder.layer:
            s = layer.attention.self
            q, k, v = (proj(x).view(x.shape[0], s.num_attention_heads, -1) for proj in (s.query, s.key, s.value))
            context = self.attention(q, k, v, cu_seqlens, self.max_len).reshape(x.shape)
            x = layer.attention.output(context, x)  # projection, dropout, residual, layer norm
            x = layer.output(layer.intermediate(x), x)
        logits = self.classifier(self.dropout(self.bert.pooler(x[cls_index][:, None])))
        loss = None if labels is None else torch.nn.functional.cross_entropy(
            logits.view(-1, self.config.num_labels).float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def note(model, why: str | None) -> str:
    """The log line that says which batches train and why."""
    if why:
        return f"padded batches ({why})"
    dropout = model.config.attention_probs_dropout_prob
    return (f"unpadded batches (variable-length flash attention: real tokens only); attention-probability dropout "
            f"{dropout} is not applied, the kernel has none; unset {ENV} to train on padded batches")
