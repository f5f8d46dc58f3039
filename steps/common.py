"""Small helpers every step program shares: clean failures, atomic writes, metrics."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


class StepError(Exception):
    """A problem with the step's input: printed as one line with its fix, exit status 2."""


def run_main(main: Callable[[], int | None]) -> None:
    try:
        rc = main() or 0
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        rc = 2
    raise SystemExit(rc)


def write_json(path: Path, data) -> None:
    """Write via a temporary file and rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)


def read_labels(folder: Path) -> list[str]:
    path = folder / "labels.json"
    if not path.is_file():
        raise StepError(f"{path} is missing: the prepare step writes it; point the input at prepare's output")
    return json.loads(path.read_text(encoding="utf-8"))["labels"]


def classification_metrics(labels, predictions, num_labels: int) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    ids = list(range(num_labels))
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, predictions, labels=ids, average="weighted", zero_division=0)),
    }


def aggregate_windows(doc_ids, logits, labels):
    """Mean logits over a document's windows (sliding long-document strategy): one row per document."""
    import numpy as np

    doc_ids, logits, labels = np.asarray(doc_ids), np.asarray(logits, dtype=np.float64), np.asarray(labels)
    unique, inverse = np.unique(doc_ids, return_inverse=True)
    sums = np.zeros((len(unique), logits.shape[1]))
    np.add.at(sums, inverse, logits)
    counts = np.bincount(inverse, minlength=len(unique))[:, None]
    doc_labels = np.zeros(len(unique), dtype=np.int64)
    doc_labels[inverse] = labels
    return unique, sums / counts, doc_labels


def experiment_name() -> str:
    return os.environ.get("SMPIPE_EXPERIMENT", "manual")
