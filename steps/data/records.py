"""What Reconcile does to records, as a library (Prepare does the same without a Reconcile step): drop empty,
unlabelled, duplicate and conflicting records and count each, cap a corpus by label share."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

MALFORMED_LISTED = 100  # malformed rows listed by line in data_report.json (all are counted)


def clean(records) -> tuple[list[dict], dict]:
    counts = Counter()
    by_text: dict[str, set] = defaultdict(set)
    kept: dict[tuple, dict] = {}
    malformed: list[dict] = []
    for record in records:
        counts["read"] += 1
        if record.get("problem"):
            counts["malformed_rows"] += 1
            if len(malformed) < MALFORMED_LISTED:
                malformed.append({"source": record.get("source", ""), "problem": record["problem"]})
            continue
        text, label = record.get("text"), record.get("label")
        if label is None or str(label).strip() == "":
            counts["missing_label"] += 1
            continue
        if text is None or str(text).strip() == "":
            counts["empty_text"] += 1
            continue
        text, label = str(text).strip(), str(label).strip()
        by_text[text].add(label)
        key = (text, label)
        if key in kept:
            counts["duplicates"] += 1
            continue
        kept[key] = {"text": text, "label": label, "source": record.get("source", "")}
    conflicting = {t for t, labels in by_text.items() if len(labels) > 1}
    rows = [r for (t, _), r in kept.items() if t not in conflicting]
    counts["conflicting_label_records"] = len(kept) - len(rows)
    out = dict(counts)
    if malformed:
        out["malformed_examples"] = malformed
    return rows, out


def cap(rows: list[dict], limit: int, seed: int) -> list[dict]:
    """Keep ``limit`` rows with every label's share preserved (at least one row each)."""
    if not limit or len(rows) <= limit:
        return rows
    rng = random.Random(seed)
    groups: dict[str, list] = defaultdict(list)
    for row in rows:
        groups[row["label"]].append(row)
    out = []
    for label in sorted(groups):
        group = groups[label]
        rng.shuffle(group)
        out += group[: max(1, round(limit * len(group) / len(rows)))]
    return out


def counted(records, progress):
    for record in records:
        progress.update()
        yield record
