"""Reconcile: gather raw data into one snapshot with a content hash, and report what was done.

    python -m steps.reconcile --input raw/ --output out/ [--text-column text --label-column label]

Nothing is dropped silently: empty texts, missing labels, exact duplicates and texts seen with
conflicting labels are counted in data_report.json, with what was done about each.
Outputs: data.jsonl ({"doc_id", "text", "label", "source"}), data_report.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

from steps import contract
from steps.core import udf
from steps.core.common import StepError, run_main, write_json
from steps.core.progress import Progress
from steps.data.records import cap, clean, counted


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, default=None, help=f"raw data folder (default {contract.PROC_RAW})")
    p.add_argument("--output", type=Path, default=None, help=f"output folder (default {contract.OUT_RECONCILED})")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--max-documents", type=int, default=0, help="keep at most this many, stratified (0 = all)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-snapshot", default="-", help="the listing digest of an s3:// DataSource, as the execution "
                   "was started with (part of the step's cache key; recorded in data_report.json)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    raw = args.input or contract.local(contract.PROC_RAW)
    out = args.output or contract.local(contract.OUT_RECONCILED)
    if not raw.exists():
        raise StepError(f"input folder {raw} does not exist: check data.source")
    progress = Progress(f"reconcile {raw}", unit="records")
    rows, counts = clean(counted(udf.function("reconcile_data")(raw, args.text_column, args.label_column), progress))
    progress.done()
    if counts.get("malformed_rows"):
        lines = ", ".join(m["source"] for m in counts["malformed_examples"][:10])
        print(f"warning: dropped {counts['malformed_rows']} malformed row(s), e.g. {lines} (data_report.json lists "
              "them with the reason)", flush=True)
    read = len(rows)
    rows = cap(sorted(rows, key=lambda r: (r["label"], r["text"])), args.max_documents, args.seed)
    if not rows:
        raise StepError(f"no usable records in {raw} (read {counts.get('read', 0)}): see the counts {counts}")
    rows.sort(key=lambda r: hashlib.sha256((r["label"] + "\0" + r["text"]).encode()).hexdigest())
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with (out / "data.jsonl").open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            line = json.dumps({"doc_id": i, **row}, ensure_ascii=False, sort_keys=True) + "\n"
            digest.update(line.encode())
            fh.write(line)
    report = {
        "snapshot_sha256": digest.hexdigest(),
        "source_listing": args.data_snapshot,
        "records": len(rows),
        "labels": dict(sorted(Counter(r["label"] for r in rows).items())),
        "counts": counts,
        "actions": {
            "missing_label": "dropped (a record needs a label to train on)",
            "empty_text": "dropped",
            "duplicates": "dropped the repeats of an identical (text, label) pair, kept the first",
            "conflicting_label_records": "dropped every record of a text seen with more than one label",
            "malformed_rows": "dropped: a row whose field count differs from its header's is not guessed at "
                              "(quote texts that contain the delimiter); the first rows are listed with their lines",
            "capped": f"kept {len(rows)} of {read} usable records, stratified by label (max_documents)"
            if len(rows) < read else "no cap",
        },
    }
    write_json(out / "data_report.json", report)
    print(json.dumps({"records": len(rows), "snapshot_sha256": report["snapshot_sha256"], "counts": counts}))
    return 0


if __name__ == "__main__":
    run_main(main)
