"""What a long-document strategy will cost, said before anything runs (`make plan`, `make validate`)."""

from __future__ import annotations

import math

from pipelines.spec.experiment import Experiment

LONG_DOCUMENT_TOKENS = 150_000  # about 300 pages: the documents this product was built for


def windows_for(tokens: int, max_length: int, stride: int) -> int:
    budget = max(max_length - 2, 1)  # [CLS] and [SEP]
    return 1 if tokens <= budget else math.ceil((tokens - stride) / max(budget - stride, 1))


def notes(spec: Experiment) -> list[str]:
    """One line per model whose strategy multiplies rows; a ``warning:`` prefix where cost is unbounded."""
    out = []
    for i, model in enumerate(spec.models):
        if model.long_documents != "sliding":
            continue
        n = windows_for(LONG_DOCUMENT_TOKENS, model.max_length, model.stride)
        where = f"models[{i}] ({model.name}), sliding windows of {model.max_length} tokens, stride {model.stride}"
        if model.max_windows == 0:
            out.append(f"warning: {where}, max_windows: 0: every window trains, so rows grow with document length "
                       f"(a 300-page document gives about {n:,} windows); set max_windows (e.g. 8)")
        else:
            out.append(f"{where}: training reads at most {model.max_windows} windows of a document per epoch "
                       f"(rows <= documents x {model.max_windows}); evaluation and serving read every window "
                       f"({model.aggregation} of their logits; a 300-page document gives about {n:,})")
    return out
