"""Inputs for `make bench` that the GPU machine cannot make itself (it has no network, no model hub).

    python bench/assets.py            # → bench/out/assets/{docs.jsonl.gz, bert-base/}

docs.jsonl.gz: real variable-length documents — every docstring of at least 60 characters in 16
installed packages (up to 2,000 per package, labelled by package), harvested with the example
experiment's own reconcile_data. bert-base/: the all-MiniLM-L6-v2 tokenizer (BERT's uncased
30,522-token vocabulary) with a BERT-base config (12 layers, hidden 768), trained from random init.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "assets"
PACKAGES = ("jinja2 botocore matplotlib sklearn pydantic rich transformers torch datasets scipy numpy accelerate "
            "boto3 wandb sagemaker pandas").split()
PER_PACKAGE = 2000
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def harvest() -> list[dict]:
    path = ROOT / "experiments" / "EXP-0001-docstring-topics" / "user_defined_funcs.py"
    spec = importlib.util.spec_from_file_location("docstring_topics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.PER_LABEL = PER_PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "packages.txt").write_text("".join(f"{p}: {p}\n" for p in PACKAGES), encoding="utf-8")
        return [{"doc_id": i, "text": r["text"], "label": r["label"]}
                for i, r in enumerate(module.reconcile_data(Path(tmp), "text", "label"))]


def bert_base(folder: Path) -> None:
    from transformers import BertConfig

    tokenizer = ROOT / ".models" / "all-MiniLM-L6-v2"
    if not tokenizer.is_dir():
        raise SystemExit("run `make model` first (the tokenizer comes from all-MiniLM-L6-v2)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer / name, folder / name)
    BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, max_position_embeddings=512).save_pretrained(str(folder))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = harvest()
    with gzip.open(OUT / "docs.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    bert_base(OUT / "bert-base")
    print(f"{len(rows)} documents, {len({r['label'] for r in rows})} labels → {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
