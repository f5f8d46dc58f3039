"""Evaluate and compare: batched inference of every exported model on the same test set.

    python -m steps.evaluate --model minilm --model baseline [--objective test:macro_f1]

For each model (``<models>/<name>/model.tar.gz`` or an unpacked folder): the TorchScript model runs on
GPU when there is one (the bf16 trace), else CPU, in length-sorted token-budget batches
(steps/inference/). Writes evaluation.json
(read by the pipeline's gate: ``best.test_macro_f1``), report.md, per-model confusion matrix PNGs,
and copies the best model's model.tar.gz to the best-model output for registration.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from steps import contract
from steps.core import tracking
from steps.core.common import (
    StepError,
    aggregate_windows,
    classification_metrics,
    read_labels,
    run_main,
    window_settings,
    write_json,
)
from steps.core.compare import mcnemar
from steps.inference import torchscript


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="model name (repeat for a comparison)")
    p.add_argument("--objective", default="test:macro_f1", choices=contract.EVALUATION_METRICS)
    p.add_argument("--prepared", type=Path, default=None, help=f"default {contract.PROC_PREPARED}")
    p.add_argument("--models-dir", type=Path, default=None, help=f"default {contract.PROC_MODELS}")
    p.add_argument("--output", type=Path, default=None, help=f"default {contract.OUT_EVALUATION}")
    p.add_argument("--best-output", type=Path, default=None, help=f"default {contract.OUT_BEST_MODEL}")
    p.add_argument("--model-package-group", default="", help="where the gate registers the best model (for the runs)")
    p.add_argument("--batch-tokens", type=int, default=0, help="padded tokens per batch (0 = 65536 on GPU, 8192 on CPU)")
    args = p.parse_args(argv)
    args.prepared = args.prepared or contract.local(contract.PROC_PREPARED)
    args.models_dir = args.models_dir or contract.local(contract.PROC_MODELS)
    args.output = args.output or contract.local(contract.OUT_EVALUATION)
    args.best_output = args.best_output or contract.local(contract.OUT_BEST_MODEL)
    return args


def artifact(models_dir: Path, name: str) -> tuple[Path, Path | None]:
    """(unpacked folder, the model.tar.gz it came from or None)."""
    folder = models_dir / name
    tars = sorted(folder.rglob("model.tar.gz")) if folder.is_dir() else []
    if tars:
        target = Path(tempfile.mkdtemp(prefix=f"eval-{name}-"))
        with tarfile.open(tars[0]) as tar:
            tar.extractall(target, filter="data")
        return target, tars[0]
    if (folder / "model.pt").is_file():
        return folder, None
    raise StepError(f"no model.tar.gz or model.pt for {name!r} under {folder}")


def per_label(labels, predictions, names: list[str]) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(labels, predictions, labels=list(range(len(names))), zero_division=0)
    return {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, n in enumerate(names)}


def confusion_png(labels, predictions, names: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, predictions, labels=list(range(len(names))))
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(names), 1 + 0.6 * len(names)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in __import__("numpy").ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return matrix.tolist()


def evaluate_model(args, name: str, names: list[str]) -> dict:
    from datasets import load_from_disk

    folder, tar = artifact(args.models_dir, name)
    data_dir = args.prepared / name
    if not (data_dir / "dataset_dict.json").is_file():
        raise StepError(f"{data_dir} is not a prepared dataset: the prepare step writes one per model")
    test = load_from_disk(str(data_dir))["test"]
    from transformers import AutoTokenizer

    pad_id = AutoTokenizer.from_pretrained(str(folder / "hf")).pad_token_id or 0
    logits, rate = torchscript.predict(folder, test, pad_id, args.batch_tokens, f"evaluate {name}: test set")
    _, aggregation = window_settings(contract.read_json(data_dir / "model.json"))
    docs, doc_logits, doc_labels = aggregate_windows(test["doc_id"], logits, test["labels"], aggregation)
    predictions = doc_logits.argmax(-1)
    metrics = classification_metrics(doc_labels, predictions, len(names))
    matrix = confusion_png(doc_labels, predictions, names, name, args.output / f"confusion_{name}.png")
    return {"metrics": {f"test_{k}": v for k, v in metrics.items()}, "per_label": per_label(doc_labels, predictions, names),
            "training": training_summary(folder, args.prepared, name),
            "confusion_matrix": matrix, "rows_per_second": rate, "documents": len(docs),
            "correct": (predictions == doc_labels).tolist(), "doc_ids": docs.tolist(), "tar": tar, "folder": folder,
            "predicted": predictions.tolist(), "true": doc_labels.tolist()}


def track(args, evaluation: dict, ranked: list[str], results: dict) -> None:
    """Evaluate's runs: every model's scores and per-label F1, McNemar's p-values, the leaderboard and the
    per-label table, the report, evaluation.json and the confusion matrices."""
    scores = {f"{name}/{key}": value for name in ranked for key, value in results[name]["metrics"].items()}
    scores |= {f"{name}/f1/{label}": v["f1"] for name in ranked for label, v in results[name]["per_label"].items()}
    scores |= {f"mcnemar/{t['a']}-vs-{t['b']}/p_holm": t["p_holm"] for t in evaluation["pairwise"]}
    leaderboard = [{"rank": i, "model": row["model"], **row["metrics"], "rows_per_second": row["rows_per_second"]}
                   for i, row in enumerate(evaluation["leaderboard"], 1)]
    labels = [{"model": name, "label": label, **values} for name in ranked
              for label, values in results[name]["per_label"].items()]
    data = _read(args.prepared / "prepare_results.json").get("data_sha256", "")
    tracking.log_step("Evaluate", "evaluate", args.output / contract.TRACKING_DIR, data,
                      {"best": evaluation["best"]["model"], "objective": args.objective, "models": ",".join(ranked),
                       "model_package_group": args.model_package_group},
                      scores, [args.output / "report.md", args.output / contract.EVALUATION_FILE,
                               *(args.output / f"confusion_{name}.png" for name in ranked)],
                      {"leaderboard": leaderboard, "per_label": labels, "mcnemar": evaluation["pairwise"]},
                      {"model_package_group": args.model_package_group} if args.model_package_group else {})


def training_summary(folder: Path, prepared: Path, name: str) -> dict:
    """How a model was made, from the files its steps wrote: the prepared data's strategy and windows, the
    training job's steps run against those planned, epochs, time and device (missing files: left out)."""
    model, train = _read(prepared / name / "model.json"), _read(folder / "train_results.json")
    windows = _read(prepared / "prepare_results.json").get("models", {}).get(name, {})
    return {"strategy": model.get("long_documents"), "max_length": model.get("max_length"),
            "stride": model.get("stride") if model.get("long_documents") == "sliding" else None,
            "training_rows_per_epoch": windows.get("training_rows_per_epoch"),
            "windows_per_document_max": windows.get("windows_per_document", {}).get("max"),
            "epochs_run": len(train.get("history", [])) or None, "epochs_planned": train.get("epochs_planned"),
            "steps_run": train.get("steps_run"), "steps_planned": train.get("steps_planned"),
            "max_steps": train.get("max_steps"), "train_seconds": train.get("train_seconds"),
            "device": train.get("device")}


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _training_table(evaluation: dict) -> list[str]:
    show = lambda v: "–" if v is None else (f"{v:,}" if isinstance(v, int) else str(v))  # noqa: E731
    lines = ["", "| model | strategy | max_length | stride | training rows / epoch | max windows / doc | epochs | "
             "steps run / planned | train time | device |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, model in evaluation["models"].items():
        t = model.get("training", {})
        seconds = f"{t['train_seconds']:.0f} s" if t.get("train_seconds") is not None else "–"
        lines.append(f"| {name} | {show(t.get('strategy'))} | {show(t.get('max_length'))} | {show(t.get('stride'))} | "
                     f"{show(t.get('training_rows_per_epoch'))} | {show(t.get('windows_per_document_max'))} | "
                     f"{show(t.get('epochs_run'))} of {show(t.get('epochs_planned'))} | {show(t.get('steps_run'))} / "
                     f"{show(t.get('steps_planned'))} | {seconds} | {show(t.get('device'))} |")
    return lines


def report_md(evaluation: dict, names: list[str]) -> str:
    key = evaluation["objective"]
    lines = [f"# Evaluation: {evaluation['experiment']}", ""]
    if evaluation["flags"]:
        lines += ["**Look first:**", "", *[f"- {flag}" for flag in evaluation["flags"]], ""]
    lines += [f"Objective: `{key}`. Best model: "
             f"**{evaluation['best']['model']}**.", "", "| rank | model | accuracy | macro F1 | weighted F1 | docs/s |",
             "|---|---|---|---|---|---|"]
    for rank, row in enumerate(evaluation["leaderboard"], start=1):
        m = row["metrics"]
        lines.append(f"| {rank} | {row['model']} | {m['test_accuracy']:.4f} | {m['test_macro_f1']:.4f} | "
                     f"{m['test_weighted_f1']:.4f} | {row['rows_per_second']:.0f} |")
    lines += _training_table(evaluation)
    if evaluation["pairwise"]:
        lines += ["", f"McNemar's test for every pair of models on the same documents; p adjusted with Holm's "
                  f"correction over the {len(evaluation['pairwise'])} pair(s).", "",
                  "| model A | model B | only A right | only B right | p | p (Holm) | method |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {t['a']} | {t['b']} | {t['only_a_correct']} | {t['only_b_correct']} | {t['p_value']:.4g} | "
                  f"{t['p_holm']:.4g} | {t['method']} |" for t in evaluation["pairwise"]]
    for name, model in evaluation["models"].items():
        lines += ["", f"## {name}", "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                  for label, v in model["per_label"].items()]
        lines.append(f"\n![confusion matrix](confusion_{name}.png)")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    names = read_labels(args.prepared)
    args.output.mkdir(parents=True, exist_ok=True)
    results = {name: evaluate_model(args, name, names) for name in args.model}  # each prints its progress lines
    key = args.objective.replace(":", "_")
    ranked = sorted(results, key=lambda n: (-results[n]["metrics"][key], n))
    best = ranked[0]
    comparisons = []
    for other in ranked[1:]:
        if results[other]["doc_ids"] != results[best]["doc_ids"]:
            raise StepError(f"models {best} and {other} were not evaluated on the same documents")
        comparisons.append({"other": other, **mcnemar(results[best]["correct"], results[other]["correct"])})
    from steps.core.common import experiment_name
    from steps.core.compare import flags, pairwise

    evaluation = {
        "experiment": experiment_name(), "objective": args.objective, "labels": names,
        "best": {"model": best, **results[best]["metrics"]},
        "leaderboard": [{"model": n, "metrics": results[n]["metrics"], "rows_per_second": results[n]["rows_per_second"]}
                        for n in ranked],
        "models": {n: {k: v for k, v in r.items() if k not in ("correct", "doc_ids", "tar", "folder", "predicted", "true")}
                   for n, r in results.items()},
        "comparisons": comparisons,
        "pairwise": pairwise({n: results[n]["correct"] for n in ranked}, ranked),
        "flags": flags(results, names),
    }
    write_json(args.output / contract.EVALUATION_FILE, evaluation)
    with (args.output / "predictions.jsonl").open("w", encoding="utf-8") as fh:  # per document, for error analysis
        for name in ranked:
            r = results[name]
            fh.writelines(json.dumps({"model": name, "doc_id": d, "label": names[t], "predicted": names[p]}) + "\n"
                          for d, t, p in zip(r["doc_ids"], r["true"], r["predicted"], strict=True))
    (args.output / "report.md").write_text(report_md(evaluation, names), encoding="utf-8")
    args.best_output.mkdir(parents=True, exist_ok=True)
    source = results[best]["tar"]
    if source is not None:
        shutil.copy(source, args.best_output / contract.BEST_MODEL_FILE)
    print(json.dumps({"best": evaluation["best"], "report": str(args.output / "report.md")}))
    track(args, evaluation, ranked, results)
    return 0


if __name__ == "__main__":
    run_main(main)
