"""CPU benchmarks (`make bench-cpu`): spec → definition time, prepare throughput, local executor overhead.

    python bench/cpu.py [--no-example]   # the example experiment runs twice (~6 min) unless --no-example

Writes bench/results/<date>-<commit>-<machine>-cpu.json and .md (bench/provenance.py: never overwritten). Targets (issue #6):
definition < 3 s including imports; prepare >= 2,000 docs/s per core. Prepare is measured twice:
the example's own run (start-up included) and the marginal rate between 1,000 and all 21,000 of the
benchmark corpus's documents (bench/assets.py), which is the rate once start-up is paid.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "experiments" / "EXP-0001-docstring-topics"
SPEC = "experiments/EXP-0002-bert-vs-distilbert/experiment.yaml"


def timed(cmd: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - started


def sdk_import_seconds() -> float:
    """Seconds to import the SDK modules compile uses, timed inside the process (no start-up, no teardown)."""
    code = ("import os, time; t = time.perf_counter(); import sagemaker.mlops.workflow; "
            "print(time.perf_counter() - t, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}).stdout
    return float(out.split()[-1])


def definition_seconds(runs: int = 7) -> dict:
    times = [timed([sys.executable, "-m", "pipelines", "definition", SPEC]) for _ in range(runs)]
    imports = [sdk_import_seconds() for _ in range(runs)]
    return {"definition_s": times, "median_s": statistics.median(times), "sdk_import_median_s": statistics.median(imports),
            "target_s": 3.0}


MODEL = ROOT / ".models" / "all-MiniLM-L6-v2"


def prepare_throughput() -> dict:
    if not MODEL.is_dir():
        return {"skipped": "run `make model` first"}
    env = {"PYTHONPATH": str(ROOT), "SMPIPE_EXPERIMENT_DIR": str(EXAMPLE)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "steps.reconcile", "--input", str(EXAMPLE / "raw"), "--output",
                        str(tmp / "rec")], cwd=ROOT, check=True, capture_output=True, env={**os.environ, **env})
        docs = sum(1 for _ in (tmp / "rec" / "data.jsonl").open())
        seconds = run_prepare(tmp, env)
        work = json.loads((tmp / "out" / "prepare_results.json").read_text(encoding="utf-8"))["seconds"]
    cores = os.cpu_count() or 1
    return {"documents": docs, "seconds_including_startup": seconds, "docs_per_second": docs / seconds,
            "docs_per_second_per_core": docs / seconds / cores, "cores": cores, "target_per_core": 2000,
            "seconds_after_startup": work, "docs_per_second_per_core_after_startup": docs / work / cores}


def run_prepare(tmp: Path, env: dict) -> float:
    """Seconds of one prepare process over tmp/rec/data.jsonl with MiniLM at 128 tokens, into tmp/out."""
    (tmp / "pre").mkdir(exist_ok=True)
    (tmp / "pre" / "minilm").symlink_to(MODEL)
    return timed([sys.executable, "-m", "steps.prepare", "--input", str(tmp / "rec"), "--pretrained", str(tmp / "pre"),
                  "--output", str(tmp / "out"), "--model", "minilm:128:head:0:"], env)


def prepare_seconds(rows: list[dict], tmp: Path) -> float:
    (tmp / "rec").mkdir(parents=True)
    (tmp / "rec" / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run_prepare(tmp, {"PYTHONPATH": str(ROOT)})


def prepare_marginal() -> dict:
    corpus = ROOT / "bench" / "out" / "assets" / "docs.jsonl.gz"
    if not corpus.is_file():
        return {"skipped": "run `python bench/assets.py` first"}
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    with tempfile.TemporaryDirectory() as tmp:  # alternating runs, so a noisy minute hits both sizes
        runs = [(prepare_seconds(rows[:1000], Path(tmp) / f"small{i}"), prepare_seconds(rows, Path(tmp) / f"full{i}"))
                for i in range(3)]
    small, full = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    rate = (len(rows) - 1000) / max(full - small, 1e-9)
    cores = os.cpu_count() or 1
    return {"documents": len(rows), "seconds_1000": [r[0] for r in runs], "seconds_all": [r[1] for r in runs],
            "marginal_docs_per_second": rate, "marginal_docs_per_second_per_core": rate / cores, "cores": cores,
            "note": "from the medians of 3 runs of each size"}


def digest_cost(gigabytes: float = 2.0, files: int = 16) -> dict:
    """What content addressing costs a compile: sha256 of every byte of a local folder (as `make plan`, `make
    local` and upsert digest data and model folders), then again with the digests remembered by path, size and
    mtime. The files are fresh in the page cache: the first figure is hashing, not disk reads."""
    sys.path.insert(0, str(ROOT))
    from pipelines.compile.bundle import DigestCache, folder_digest

    size = int(gigabytes * 2**30 / files)
    block = os.urandom(4 * 2**20)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        for i in range(files):
            with (folder / f"part-{i:02d}.bin").open("wb") as fh:
                for _ in range(size // len(block)):
                    fh.write(block)
        cold = []
        for _ in range(3):
            started = time.perf_counter()
            folder_digest(folder, DigestCache(None))
            cold.append(time.perf_counter() - started)
        cache = DigestCache(Path(tmp) / "digests.json")
        folder_digest(folder, cache)
        cache.save()
        started = time.perf_counter()
        folder_digest(folder, DigestCache(Path(tmp) / "digests.json"))
        warm = time.perf_counter() - started
    total = size * files
    return {"bytes": total, "files": files, "every_byte_seconds_median": statistics.median(cold),
            "every_byte_seconds": cold, "repeats": len(cold), "remembered_seconds": warm,
            "gigabytes_per_second": total / 2**30 / statistics.median(cold)}


def example_runs() -> dict:
    """The example end to end in a fresh store, then again with every step cached (executor overhead)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pipelines", "local", str(EXAMPLE), "--store", f"{tmp}/store", "--runs", f"{tmp}/runs"]
        started = time.perf_counter()
        first = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
        cached = timed(cmd)
        run = json.loads(Path(re.search(r"^results: (.+)$", first.stdout, re.M).group(1)).read_text(encoding="utf-8"))
    steps = [s["seconds"] for s in run["steps"].values() if s["status"] == "Succeeded"]
    return {"test_macro_f1": {name: m["test_macro_f1"] for name, m in run["scores"].items()}, "run": run,
            "wall_seconds": wall, "steps": len(steps), "seconds_in_steps": sum(steps),
            "executor_seconds_outside_steps": wall - sum(steps), "all_cached_seconds": cached,
            "all_cached_seconds_per_step": cached / max(len(steps), 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-example", dest="example", action="store_false",
                   help="skip running the example experiment (about 6 minutes)")
    args = p.parse_args()
    from provenance import provenance, result_path

    info = provenance()
    results = {**info, "machine": {"platform": info["platform"], "python": info["python"], "cores": info["cores"]},
               "definition": definition_seconds(), "prepare": prepare_throughput(), "prepare_marginal": prepare_marginal(),
               "digest": digest_cost()}
    if args.example:
        results["example"] = example_runs()
    out = result_path("cpu")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = markdown(results)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def markdown(results: dict) -> list[str]:
    d, p, m = results["definition"], results["prepare"], results["prepare_marginal"]
    lines = [f"{results['machine']['platform']}, Python {results['machine']['python']}, {results['machine']['cores']} cores, "
             f"{results['date']}", "", "| measure | value | target |", "|---|---|---|",
             f"| spec → definition (median of 7, fresh process) | {d['median_s']:.2f} s | < {d['target_s']:.0f} s |",
             f"| importing the SDK workflow modules alone (bare import, for scale) | {d['sdk_import_median_s']:.2f} s | |"]
    if "docs_per_second" in p:
        lines.append(f"| prepare, example ({p['documents']} docs), start-up included | {p['docs_per_second_per_core']:.0f} "
                     f"docs/s per core ({p['cores']} cores, {p['seconds_including_startup']:.1f} s) | |")
        lines.append(f"| prepare, example, after start-up (imports, tokenizer load) | "
                     f"{p['docs_per_second_per_core_after_startup']:,.0f} docs/s per core ({p['seconds_after_startup']:.2f} s) "
                     f"| ≥ {p['target_per_core']:,} |")
    if "marginal_docs_per_second" in m:
        lines.append(f"| prepare, marginal rate 1,000 → {m['documents']:,} docs (start-up excluded, medians of 3) | "
                     f"{m['marginal_docs_per_second_per_core']:.0f} docs/s per core | ≥ 2000 |")
    g = results.get("digest")
    if g:
        lines.append(f"| digest of a {g['bytes'] / 2**30:.0f} GB local folder, every byte (median of {g['repeats']}) | "
                     f"{g['every_byte_seconds_median']:.2f} s ({g['gigabytes_per_second']:.2f} GB/s) | |")
        lines.append(f"| the same, digests remembered (path, size, mtime) | {g['remembered_seconds'] * 1000:.1f} ms | |")
    if "example" in results:
        e = results["example"]
        lines += [f"| example experiment, fresh store | {e['wall_seconds']:.0f} s ({e['steps']} steps, "
                  f"{e['seconds_in_steps']:.0f} s inside them) | |",
                  f"| local executor outside the steps (compile, sync, gate) | {e['executor_seconds_outside_steps']:.1f} s | |",
                  f"| example again, every step cached | {e['all_cached_seconds']:.1f} s "
                  f"({e['all_cached_seconds_per_step']:.2f} s per step) | |",
                  "| example test macro F1 | " + ", ".join(f"{k} {v:.4f}" for k, v in e["test_macro_f1"].items()) + " | |"]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
