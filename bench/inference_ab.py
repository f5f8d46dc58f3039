"""Batched inference on real documents, each contender one at a time on the same GPU in one run: the unpadded
pass steps.evaluate takes (inference/packed.py), the same with its layers' tails compiled
(SMPIPE_INFERENCE_COMPILE=1), the padded TorchScript trace (SMPIPE_INFERENCE_PACKED=0) and
the original pipeline's batch-1 TorchScript loop. One result file with the rates and their ratios.

    python bench/inference_ab.py [--split test|all] [--work bench/out/inference-ab] [--out bench/results]

The docs case of bench/gpu.py: 21,093 docstrings (bench/out/assets), split 0.8/0.05/0.15, BERT-base from
random init with a 16-label head, exported by steps.export.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(cmd: list[str], **env) -> dict:
    """A bench program's last line (its JSON figure), the program alone on the GPU."""
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "WANDB_MODE": "disabled", **env}
    done = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=full, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def artifact(work: Path) -> tuple[Path, Path]:
    """(model dir, prepared data dir) of the docs case, built once under ``work``."""
    import gzip

    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from bench import gpu

    data = work / "prep-docs" / "docs"
    if not (data / "dataset_dict.json").is_file():
        with gzip.open(gpu.ASSETS / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
            docs = [json.loads(line) for line in fh]
        gpu.prepare(work, "docs", docs, ["docs:512:head:0:"], "0.8,0.05,0.15")
    model_dir = work / "model"
    if not (model_dir / "model.pt").is_file():
        labels = json.loads((data / "labels.json").read_text())
        labels = labels.get("labels", labels) if isinstance(labels, dict) else labels
        config = AutoConfig.from_pretrained(str(gpu.ASSETS / "bert-base"), num_labels=len(labels))
        AutoModelForSequenceClassification.from_config(config).save_pretrained(str(model_dir / "hf"))
        AutoTokenizer.from_pretrained(str(gpu.ASSETS / "bert-base")).save_pretrained(str(model_dir / "hf"))
        run(["-m", "steps.export", "--model-dir", str(model_dir), "--data-dir", str(data)])
    return model_dir, data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "inference-ab")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--batch1-rows", type=int, default=500)
    p.add_argument("--split", default="test", help="the rows scored: a split, or all (21,093 documents)")
    args = p.parse_args()
    import torch

    from bench.provenance import provenance, result_path

    args.work.mkdir(parents=True, exist_ok=True)
    model_dir, data = artifact(args.work)
    infer = ["bench/inference.py", "--model-dir", str(model_dir), "--data", str(data), "--split", args.split]
    figures = {"unpadded": run(infer), "unpadded_compiled": run(infer, SMPIPE_INFERENCE_COMPILE="1"),
               "padded": run(infer, SMPIPE_INFERENCE_PACKED="0"),
               "batch1": run(["bench/contenders.py", "batch1", "--data", str(data), "--model",
                              str(ROOT / "bench" / "out" / "assets" / "bert-base"), "--rows", str(args.batch1_rows)])}
    rate = {k: v["rows_per_second"] for k, v in figures.items()}
    result = {**provenance(), "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "case": f"docs, split {args.split}", "figures": figures,
              "ratios": {"unpadded_vs_batch1": rate["unpadded"] / rate["batch1"],
                         "unpadded_compiled_vs_batch1": rate["unpadded_compiled"] / rate["batch1"],
                         "padded_vs_batch1": rate["padded"] / rate["batch1"],
                         "unpadded_vs_padded": rate["unpadded"] / rate["padded"]}}
    path = result_path("inference-ab" + ("" if args.split == "test" else f"-{args.split}"), args.out)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["ratios"]), f"→ {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
