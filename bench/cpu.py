"""CPU benchmarks (`make bench-cpu`): spec → definition time and prepare throughput.

Writes bench/results/cpu-<date>.json and .md with the machine and versions. Targets (issue #6):
definition < 3 s including imports; prepare >= 2,000 docs/s per core on the example data.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "experiments" / "EXP-0001-docstring-topics"
SPEC = "experiments/EXP-0002-bert-vs-distilbert/experiment.yaml"


def timed(cmd: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - started


def definition_seconds(runs: int = 3) -> dict:
    times = [timed([sys.executable, "-m", "pipelines", "definition", SPEC]) for _ in range(runs)]
    imports = [timed([sys.executable, "-c", "import sagemaker.mlops.workflow"],
                     {"AWS_DEFAULT_REGION": "us-east-1"}) for _ in range(runs)]
    return {"definition_s": times, "median_s": statistics.median(times), "sdk_import_median_s": statistics.median(imports),
            "target_s": 3.0}


def prepare_throughput() -> dict:
    model = ROOT / ".models" / "all-MiniLM-L6-v2"
    if not model.is_dir():
        return {"skipped": "run `make model` first"}
    env = {"PYTHONPATH": str(ROOT), "SMPIPE_EXPERIMENT_DIR": str(EXAMPLE)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "steps.reconcile", "--input", str(EXAMPLE / "raw"), "--output",
                        str(tmp / "rec")], cwd=ROOT, check=True, capture_output=True, env={**os.environ, **env})
        docs = sum(1 for _ in (tmp / "rec" / "data.jsonl").open())
        (tmp / "pre").mkdir()
        (tmp / "pre" / "minilm").symlink_to(model)
        seconds = timed([sys.executable, "-m", "steps.prepare", "--input", str(tmp / "rec"), "--pretrained",
                         str(tmp / "pre"), "--output", str(tmp / "out"), "--model", "minilm:128:head:0:"], env)
    cores = os.cpu_count() or 1
    return {"documents": docs, "seconds_including_startup": seconds, "docs_per_second": docs / seconds,
            "docs_per_second_per_core": docs / seconds / cores, "cores": cores, "target_per_core": 2000}


def main() -> int:
    results = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()},
               "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "definition": definition_seconds(), "prepare": prepare_throughput()}
    out = ROOT / "bench" / "results" / f"cpu-{datetime.now(UTC):%Y-%m-%d}"
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    d, p = results["definition"], results["prepare"]
    lines = ["| measure | value | target |", "|---|---|---|",
             f"| spec → definition (median of 3, fresh process) | {d['median_s']:.2f} s | < {d['target_s']:.0f} s |",
             f"| of which importing the SageMaker SDK | {d['sdk_import_median_s']:.2f} s | |"]
    if "docs_per_second" in p:
        lines.append(f"| prepare, {p['documents']} docs, incl. start-up | {p['docs_per_second_per_core']:.0f} docs/s per core "
                     f"({p['cores']} cores) | ≥ {p['target_per_core']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
