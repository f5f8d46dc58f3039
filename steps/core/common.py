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


AGGREGATIONS = ("mean", "max", "vote")


def aggregate_windows(doc_ids, logits, labels, how: str = "mean"):
    """One row per document from its windows' logits: their mean, their per-label maximum, or a vote (the
    share of windows predicting each label; ties go to the higher mean logit)."""
    import numpy as np

    doc_ids, logits, labels = np.asarray(doc_ids), np.asarray(logits, dtype=np.float64), np.asarray(labels)
    unique, inverse = np.unique(doc_ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(unique))[:, None]
    sums = np.zeros((len(unique), logits.shape[1]))
    np.add.at(sums, inverse, logits)
    mean = sums / counts
    if how == "max":
        out = np.full((len(unique), logits.shape[1]), -np.inf)
        np.maximum.at(out, inverse, logits)
    elif how == "vote":
        votes = np.zeros_like(mean)
        np.add.at(votes, (inverse, logits.argmax(axis=1)), 1.0)
        out = votes / counts + 1e-6 * (mean - mean.min(axis=1, keepdims=True))  # ties: the higher mean logit
    else:
        out = mean
    doc_labels = np.zeros(len(unique), dtype=np.int64)
    doc_labels[inverse] = labels
    return unique, out, doc_labels


def window_settings(model_json: dict) -> tuple[int, str]:
    """(training windows per document, 0 = all; how evaluation and serving aggregate windows)."""
    return int(model_json.get("max_windows", 0) or 0), model_json.get("aggregation", "mean")


def experiment_name() -> str:
    return os.environ.get("SMPIPE_EXPERIMENT", "manual")
