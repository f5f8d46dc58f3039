"""Prepare: label map, one stratified train/validation/test split, tokenisation per model.

    python -m steps.prepare --model minilm:256:head:64: [--model NAME:MAX_LENGTH:STRATEGY:STRIDE:HUB_ID ...]

Every model is encoded from the same split (a comparison is fair only on the same documents).
Reads data.jsonl from the reconcile step (or raw files when there is none) and each model's tokenizer
from its pretrained input. Writes labels.json, split.json and one dataset folder per model
(``save_to_disk``: train / validation / test, with a doc_id per row so windows can be aggregated).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

from steps import contract
from steps.core import tracking, udf
from steps.core.common import StepError, run_main, write_json
from steps.core.progress import Progress
from steps.data.records import clean

MIN_PER_LABEL = 3  # one document in each split


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, default=None, help="reconciled folder (data.jsonl) or raw folder")
    p.add_argument("--pretrained", type=Path, default=None, help=f"folder of <model>/ (default {contract.PROC_PRETRAINED})")
    p.add_argument("--output", type=Path, default=None, help=f"default {contract.OUT_PREPARED}")
    p.add_argument("--model", action="append", required=True, help="NAME:MAX_LENGTH:STRATEGY:STRIDE:HUB_ID")
    p.add_argument("--splits", default="0.8,0.1,0.1", help="train,validation,test fractions")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--data-snapshot", default="-", help="without a Reconcile step: the DataSource listing digest")
    return p.parse_args(argv)


def parse_model(raw: str) -> dict:
    """NAME:MAX_LENGTH:STRATEGY:STRIDE:HUB_ID[:MAX_WINDOWS:AGGREGATION] (HUB_ID may be empty)."""
    parts = raw.split(":")
    if len(parts) not in (5, 7) or not parts[1].isdigit() or (len(parts) == 7 and not parts[5].isdigit()):
        raise StepError(f"--model {raw!r}: expected NAME:MAX_LENGTH:STRATEGY:STRIDE:HUB_ID[:MAX_WINDOWS:AGGREGATION] "
                        "(HUB_ID may be empty)")
    name, max_length, strategy, stride, hub, *windows = parts
    max_windows, aggregation = (int(windows[0]), windows[1]) if windows else (0, "mean")
    return {"name": name, "max_length": int(max_length), "long_documents": strategy, "stride": int(stride or 0),
            "hub_model_id": hub, "max_windows": max_windows, "aggregation": aggregation}


def read_records(args) -> list[dict]:
    reconciled = args.input or contract.local(contract.PROC_RECONCILED)
    if (reconciled / "data.jsonl").is_file():
        lines = (reconciled / "data.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    raw = args.input or contract.local(contract.PROC_RAW)
    if not raw.exists():
        raise StepError(f"neither {reconciled}/data.jsonl nor a raw folder {raw} exists")
    rows, _ = clean(udf.function("reconcile_data")(raw, args.text_column, args.label_column))
    return [{"doc_id": i, **row} for i, row in enumerate(rows)]


def split(records: list[dict], fractions: list[float], seed: int) -> dict[str, list[dict]]:
    """A seeded stratified split: every label in every part, in proportion to its share of the data."""
    counts = Counter(r["label"] for r in records)
    if len(counts) < 2:
        raise StepError(f"only one label ({next(iter(counts), 'none')!r}) in {len(records)} records: "
                        "a classifier needs at least two")
    scarce = {label: n for label, n in counts.items() if n < MIN_PER_LABEL}
    if scarce:
        raise StepError(f"labels with fewer than {MIN_PER_LABEL} documents cannot appear in every split: {scarce}; "
                        "add data or merge these labels in reconcile_data")
    _, val_f, test_f = fractions
    sizes = {part: max(len(counts), round(f * len(records))) for part, f in (("test", test_f), ("validation", val_f))}
    test = quotas(counts, sizes["test"], keep=2)
    validation = quotas(counts - test, sizes["validation"], keep=1)
    by_label = {label: [] for label in sorted(counts)}
    for record in records:
        by_label[record["label"]].append(record)
    rng = random.Random(seed)
    parts = {"train": [], "validation": [], "test": []}
    for label, rows in by_label.items():
        rng.shuffle(rows)
        t, v = test[label], validation[label]
        parts["test"] += rows[:t]
        parts["validation"] += rows[t:t + v]
        parts["train"] += rows[t + v:]
    for rows in parts.values():
        rng.shuffle(rows)
    return parts


def quotas(counts: Counter, total: int, keep: int) -> Counter:
    """Shares of ``total`` in proportion to ``counts``, each label at least 1 and at most its count - ``keep``
    (largest remainders first, ties by label)."""
    documents, room = sum(counts.values()), sum(n - keep - 1 for n in counts.values())
    if not len(counts) <= total <= len(counts) + room:
        raise StepError(f"cannot take {total} of {documents} documents for a split while leaving every "
                        f"label in every part; change data.splits in the spec or add data")
    exact = {label: total * n / documents for label, n in counts.items()}
    share = Counter({label: min(max(1, int(x)), counts[label] - keep) for label, x in exact.items()})
    while (gap := total - sum(share.values())) != 0:
        step = 1 if gap > 0 else -1
        movable = [lb for lb in sorted(counts) if 1 <= share[lb] + step <= counts[lb] - keep]
        label = max(movable, key=lambda lb: step * (exact[lb] - share[lb]))
        share[label] += step
    return share


def encode(parts: dict[str, list[dict]], label_names: list[str], model: dict, tokenizer):
    from datasets import Dataset, DatasetDict
    from datasets.table import InMemoryTable

    index = {label: i for i, label in enumerate(label_names)}
    features = udf.function("get_dataset_features")(label_names)
    user_fn = udf.function("encode_data")
    progress = Progress(f"prepare {model['name']}: tokenising", total=sum(map(len, parts.values())), unit="documents")

    def encode_fn(batch, tokenizer, model):
        encoded = user_fn(batch, tokenizer, model)
        progress.update(len(batch["doc_id"]))
        return encoded

    out = {}
    for name, rows in parts.items():
        table = InMemoryTable.from_pydict({"text": [r["text"] for r in rows],
                                           "labels": [index[r["label"]] for r in rows],
                                           "doc_id": [r["doc_id"] for r in rows]})
        raw = Dataset(table, fingerprint=_fingerprint(model, "raw-" + name, rows))
        # One process: the fast tokenizer already spreads each batch over every core (Rayon threads),
        # and worker processes would have to pickle user functions and tokenizers (fails on some stacks).
        out[name] = raw.map(encode_fn, batched=True, batch_size=1000, remove_columns=raw.column_names,
                            fn_kwargs={"tokenizer": tokenizer, "model": model}, features=features,
                            new_fingerprint=_fingerprint(model, name, rows))
    progress.done()
    return DatasetDict(out)


def window_stats(encoded, model: dict) -> dict:
    """What a long-document strategy costs, before any training: windows per document and the training
    rows of one epoch (bounded by max_windows per document)."""
    import numpy as np

    per_split = {name: np.bincount(np.unique(np.asarray(part["doc_id"]), return_inverse=True)[1])
                 for name, part in encoded.items() if len(part)}
    counts = np.concatenate(list(per_split.values())) if per_split else np.zeros(0, dtype=np.int64)
    cap = int(model.get("max_windows") or 0)
    train = per_split.get("train", np.zeros(0, dtype=np.int64))
    lengths = np.asarray([len(ids) for ids in encoded["train"]["input_ids"]]) if len(encoded["train"]) else np.zeros(0)
    return {"documents": int(len(counts)), "rows": {name: len(part) for name, part in encoded.items()},
            "windows_per_document": {"median": float(np.median(counts)) if len(counts) else 0.0,
                                     "p95": float(np.percentile(counts, 95)) if len(counts) else 0.0,
                                     "max": int(counts.max()) if len(counts) else 0},
            "documents_over_one_window": int((counts > 1).sum()),
            # head / head+tail: a window filled to max_length is (almost always) a truncated document
            "documents_filling_the_window": int((lengths >= model["max_length"]).sum()),
            "max_windows": cap, "aggregation": model.get("aggregation", "mean"),
            "mean_tokens_per_training_row": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
            "training_rows_per_epoch": int(np.minimum(train, cap).sum() if cap else train.sum())}


def _fingerprint(model: dict, split_name: str, rows: list[dict]) -> str:
    """Given explicitly, so datasets never pickles user functions and tokenizers to hash them
    (which fails on some Python/dill combinations)."""
    digest = hashlib.sha256(json.dumps([model, split_name, [r["doc_id"] for r in rows]], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def content_digest(parts: dict[str, list[dict]]) -> str:
    """The split's content (which document, text and label went where): training resumes only on the same."""
    digest = hashlib.sha256()
    for name in sorted(parts):
        for row in parts[name]:
            digest.update(json.dumps([name, row["doc_id"], row["label"], row["text"]]).encode())
    return digest.hexdigest()


def load_tokenizer(model: dict, pretrained_root: Path):
    from transformers import AutoTokenizer

    folder = pretrained_root / model["name"]
    source = str(folder) if folder.is_dir() else model["hub_model_id"]
    if not source:
        raise StepError(f"model {model['name']!r}: no pretrained folder at {folder} and no hub id; "
                        "check models[].source in the spec")
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise StepError(f"model {model['name']!r}: cannot load a tokenizer from {source} ({exc})") from None


def main(argv=None) -> int:
    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # batch encoding on every core
    args = parse_args(argv)
    out = args.output or contract.local(contract.OUT_PREPARED)
    pretrained = args.pretrained or contract.local(contract.PROC_PRETRAINED)
    fractions = [float(x) for x in args.splits.split(",")]
    models = [parse_model(m) for m in args.model]
    tokenizers = {m["name"]: load_tokenizer(m, pretrained) for m in models}  # fail before any work
    import datasets  # imported before the clock starts: start-up, not work per document

    datasets.disable_progress_bars()  # our own progress lines replace them (they suit log files)

    started = time.perf_counter()
    records = read_records(args)
    parts = split(records, fractions, args.seed)
    label_names = sorted({r["label"] for r in records})
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "labels.json", {"labels": label_names})
    write_json(out / "split.json", {k: sorted(r["doc_id"] for r in v) for k, v in parts.items()})
    with (out / "test_documents.jsonl").open("w", encoding="utf-8") as fh:  # the texts, for error analysis
        fh.writelines(json.dumps({"doc_id": r["doc_id"], "label": r["label"], "text": r["text"]}) + "\n"
                      for r in sorted(parts["test"], key=lambda r: r["doc_id"]))
    summary, stats, content = {}, {}, content_digest(parts)
    for model in models:
        encoded = encode(parts, label_names, model, tokenizers[model["name"]])
        target = out / model["name"]
        encoded.save_to_disk(str(target))
        write_json(target / "labels.json", {"labels": label_names})
        fingerprint = hashlib.sha256(json.dumps([content, model], sort_keys=True).encode()).hexdigest()[:16]
        write_json(target / "model.json", {**model, "fingerprint": fingerprint, "data_sha256": content})
        summary[model["name"]] = {k: len(v) for k, v in encoded.items()}
        stats[model["name"]] = window_stats(encoded, model)
        print(f"prepare {model['name']}: {json.dumps(stats[model['name']])}", flush=True)
    seconds = time.perf_counter() - started
    write_json(out / "prepare_results.json", {"documents": {k: len(v) for k, v in parts.items()},
                                              "rows": summary, "models": stats, "labels": label_names,
                                              "data_sha256": content,
                                              "seconds": round(seconds, 3),
                                              "documents_per_second": round(len(records) / seconds, 1)})
    print(json.dumps({"documents": {k: len(v) for k, v in parts.items()}, "rows": summary}))
    report = [{"model": name, "split": split_name, "rows": rows} for name, counts in summary.items()
              for split_name, rows in counts.items()]
    tracking.log_step("Prepare", "prepare", out / contract.TRACKING_DIR, content,
                      {"labels": len(label_names), "label_names": ",".join(label_names), "models": ",".join(stats)},
                      {f"documents/{k}": len(v) for k, v in parts.items()},
                      [out / "prepare_results.json", out / "split.json"], {"rows": report})
    return 0



if __name__ == "__main__":
    run_main(main)
