"""The GPU benchmark's figures against the issue's targets, as JSON and a Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

# Each figure and its target (higher is better); None: reported without a target.
TARGETS = {
    "train full128: ours / Trainer bf16 (samples/s)": 2.5,
    "train full512: ours / Trainer bf16 (samples/s)": 2.5,
    "train full128: our MFU": 0.40,
    "train docs: ours / Trainer defaults (real tokens/s)": 4.0,
    "train docs: ours / Trainer bf16 (real tokens/s)": None,
    "2-GPU scaling full128": 0.92,
    "2-GPU scaling docs": 0.92,
    "inference full128: ours / batch-1 TorchScript (rows/s)": 50.0,
    "inference docs: ours / batch-1 TorchScript (rows/s)": 50.0,
}


def _get(results: dict, key: str, field: str):
    value = results.get(key, {}).get(field)
    return float(value) if isinstance(value, int | float) else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def summarise(results: dict) -> dict:
    r = results
    ours1 = {c: r.get(f"train/ours/{c}/1gpu", {}) for c in ("full128", "full512", "docs")}
    values = {
        "train full128: ours / Trainer bf16 (samples/s)": _ratio(ours1["full128"].get("samples_per_second"),
                                                                 _get(r, "train/trainer-bf16/full128", "samples_per_second")),
        "train full512: ours / Trainer bf16 (samples/s)": _ratio(ours1["full512"].get("samples_per_second"),
                                                                 _get(r, "train/trainer-bf16/full512", "samples_per_second")),
        "train full128: our MFU": ours1["full128"].get("mfu"),
        "train docs: ours / Trainer defaults (real tokens/s)": _ratio(
            ours1["docs"].get("tokens_per_second"), _get(r, "train/trainer-defaults/docs", "tokens_per_second")),
        "train docs: ours / Trainer bf16 (real tokens/s)": _ratio(
            ours1["docs"].get("tokens_per_second"), _get(r, "train/trainer-bf16/docs", "tokens_per_second")),
    }
    for case in ("full128", "docs"):
        two = _get(r, f"train/ours/{case}/2gpu", "samples_per_second")
        values[f"2-GPU scaling {case}"] = _ratio(two, 2 * ours1[case]["samples_per_second"]) \
            if ours1[case].get("samples_per_second") else None
        values[f"inference {case}: ours / batch-1 TorchScript (rows/s)"] = _ratio(
            _get(r, f"infer/ours/{case}", "rows_per_second"), _get(r, f"infer/batch1/{case}", "rows_per_second"))
    return {name: {"value": values.get(name), "target": target,
                   "met": None if values.get(name) is None or target is None else values[name] >= target}
            for name, target in TARGETS.items()}


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def table(results: dict) -> list[str]:
    lines = ["| run | samples/s | real tokens/s | padding eff. | MFU | peak GiB | wall s |", "|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        if not key.startswith("train/"):
            continue
        if "error" in r:
            lines.append(f"| {key} | failed: {r['error'][-120:].replace('|', '/')} | | | | | |")
            continue
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "–"
        lines.append(f"| {key} | {_fmt(r.get('samples_per_second'))} | {_fmt(r.get('tokens_per_second'))} | "
                     f"{_fmt(r.get('padding_efficiency'), 3)} | {mfu} | {_fmt(r.get('peak_memory_gib'), 1)} | "
                     f"{_fmt(r.get('wall_seconds'))} |")
    lines += ["", "| inference | rows/s (median) | spread | windows (s) |", "|---|---|---|---|"]
    lines += [f"| {k} | {_fmt(r.get('rows_per_second'))} | {' – '.join(_fmt(v) for v in r.get('spread', []))} | "
              f"{', '.join(f'{w:.1f}' for w in r.get('windows_s', []))} |" if "error" not in r
              else f"| {k} | failed | | |" for k, r in results.items() if k.startswith("infer/")]
    return lines


def write(out: Path, env: dict, results: dict, summary: dict, cases: dict) -> Path:
    """Rewritten after every measurement of one run, always to the run's own file (env["result"]: named by
    date, commit, machine and bench when the run started, never an earlier run's)."""
    out.mkdir(parents=True, exist_ok=True)
    path = Path(env["result"]).with_suffix("")
    clean = {k: {f: v for f, v in r.items() if f != "model_dir"} for k, r in results.items()}
    data = {"environment": env, "cases": {k: dict(zip(("max_length", "batch_per_gpu", "our_steps", "trainer_steps"), v,
                                                        strict=True)) for k, v in cases.items()},
            "summary": summary, "results": clean}
    path.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    lines = [f"# GPU benchmark {env['date']}", "",
             f"{', '.join(env['gpus'])}; torch {env['torch']} (CUDA {env['cuda']}), transformers {env['transformers']}, "
             f"accelerate {env['accelerate']}, Python {env['python']}, {env['cpus']} CPUs. "
             f"Commit {env.get('commit', '?')}. Contenders side by side on separate GPUs: {env['side_by_side']} "
             f"(one at a time unless --side-by-side). Quick run: {env['quick']}.", "",
             "| target | measured | wanted | met |", "|---|---|---|---|"]
    for name, s in summary.items():
        value = _fmt(s["value"], 2) if name != "train full128: our MFU" or s["value"] is None else f"{s['value']:.1%}"
        wanted = "–" if s["target"] is None else f"≥ {s['target']:g}"
        lines.append(f"| {name} | {value} | {wanted} | {'–' if s['met'] is None else 'yes' if s['met'] else 'no'} |")
    lines += ["", *table(clean)]
    export = results.get("train/ours/full128/1gpu", {}).get("export")
    if export:
        lines += ["", "Export parity (full128 model, vs fp32 eager): " + "; ".join(
            f"{d} {e['dtype']}: max |Δlogit| {e['max_abs_diff']:.2e} (tolerance {e['tolerance']:.2e}), "
            f"same prediction on {e['prediction_agreement']:.1%}" for d, e in export.items())]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
