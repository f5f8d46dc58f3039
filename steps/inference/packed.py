"""Unpadded forward pass of a BERT classifier for batched inference on a GPU.

The rows of a batch are laid end to end as one [tokens, hidden] matrix: the linear layers compute real
tokens only and attention is torch's variable-length flash kernel (``varlen_attn``), which needs no
padding mask. The padded TorchScript trace (inference/torchscript.py) spent 28% of its kernel time in
masked attention (bench/results/2026-12-07-6773387-h100-x1-inference-where.json). The model is built
from the job's own hf/ weights in bf16 and is checked against the exported trace before it is used (inference/torchscript.py).
"""

from __future__ import annotations

import torch

ENV = "SMPIPE_INFERENCE_PACKED"  # 0: always the padded trace
COMPILE = "SMPIPE_INFERENCE_COMPILE"  # 1: the layers' tails compiled by inductor (fused elementwise kernels)


def unsupported(config, device: str) -> str | None:
    """Why this model or host cannot take the unpadded pass (None: it can)."""
    import os

    if os.environ.get(ENV, "1") == "0":
        return f"{ENV}=0"
    if device != "cuda":
        return "no GPU (the variable-length kernel is CUDA's)"
    if varlen() is None:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen"
    if getattr(config, "model_type", None) != "bert":
        return f"model_type {getattr(config, 'model_type', None)!r} (the unpadded pass covers BERT's layout)"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type {config.position_embedding_type!r}"
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "a decoder configuration"
    return None


def varlen():
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def padded_attention(q, k, v, cu, max_len: int):
    """The same attention computed one row at a time, on CPU (tests)."""
    out = torch.empty_like(q)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        rows = [t[a:b].transpose(0, 1)[None] for t in (q, k, v)]  # [1, heads, length, dim]
        out[a:b] = torch.nn.functional.scaled_dot_product_attention(*rows)[0].transpose(0, 1)
    return out


def flash_attention(q, k, v, cu, max_len: int):
    return varlen()(q, k, v, cu, cu, max_len, max_len)


class PackedBert(torch.nn.Module):
    """BertForSequenceClassification's eval forward over packed rows: (ids, positions, cu_seqlens, longest
    row) -> logits of every row. It holds the HF model's own modules (no copied weights)."""

    def __init__(self, model, attention=flash_attention, tail=None):
        super().__init__()
        self.bert, self.classifier, self.attention = model.bert, model.classifier, attention
        self.heads, self.tail = model.config.num_attention_heads, tail

    def forward(self, ids, positions, cu, max_len: int):
        e = self.bert.embeddings
        x = e.word_embeddings(ids) + e.position_embeddings(positions) + e.token_type_embeddings.weight[0]
        x = e.LayerNorm(x)
        for layer in self.bert.encoder.layer:
            x = self.layer(layer, x, cu, max_len)
        return self.classifier(self.bert.pooler(x[cu[:-1].long()][:, None]))

    def layer(self, layer, x, cu, max_len: int):
        s = layer.attention.self
        q, k, v = (proj(x).view(x.shape[0], self.heads, -1) for proj in (s.query, s.key, s.value))
        context = self.attention(q, k, v, cu, max_len).reshape(x.shape)
        out = layer.attention.output
        if self.tail is not None:
            return self.tail(x, context, *tail_weights(layer), out.LayerNorm.eps)
        x = out.LayerNorm(x + out.dense(context))
        return layer.output.LayerNorm(x + layer.output.dense(layer.intermediate.intermediate_act_fn(
            layer.intermediate.dense(x))))


def tail(x, context, wo, bo, g1, b1, wi, bi, wf, bf, g2, b2, eps: float):
    """A layer after its attention, as one function of tensors (so that one compiled graph serves every
    layer): output projection, residual, layer norm, feed-forward with exact GELU, residual, layer norm."""
    f = torch.nn.functional
    x = f.layer_norm(x + f.linear(context, wo, bo), x.shape[-1:], g1, b1, eps)
    return f.layer_norm(x + f.linear(f.gelu(f.linear(x, wi, bi)), wf, bf), x.shape[-1:], g2, b2, eps)


def tail_weights(layer) -> tuple:
    out, inter, ffn = layer.attention.output, layer.intermediate.dense, layer.output
    return (out.dense.weight, out.dense.bias, out.LayerNorm.weight, out.LayerNorm.bias, inter.weight, inter.bias,
            ffn.dense.weight, ffn.dense.bias, ffn.LayerNorm.weight, ffn.LayerNorm.bias)


def fused_tail(config):
    """The compiled tail where asked for (SMPIPE_INFERENCE_COMPILE=1) and the layers are exactly what ``tail``
    computes, else None (each layer's own modules)."""
    import os

    if os.environ.get(COMPILE, "0") != "1" or config.hidden_act != "gelu":
        return None
    return torch.compile(tail, dynamic=True)


def build(hf_dir, device: str, dtype):
    """PackedBert from hf/ on ``device`` in ``dtype``, or (None, why not)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if not (hf_dir / "config.json").is_file():
        return None, f"{hf_dir} holds no model"
    config = AutoConfig.from_pretrained(str(hf_dir))
    why = unsupported(config, device)
    if why:
        return None, why
    model = AutoModelForSequenceClassification.from_pretrained(str(hf_dir), dtype=dtype).eval()
    if not hasattr(model, "bert") or not hasattr(model, "classifier") or model.bert.pooler is None:
        return None, f"{type(model).__name__} is not BERT's sequence classifier with a pooler"
    return PackedBert(model, flash_attention, fused_tail(config)).to(device), None
