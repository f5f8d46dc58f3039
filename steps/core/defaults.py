"""Built-in text-classification defaults for the five user functions.

An experiment's user_defined_funcs.py may define any of them with the same signature to replace
the default; see templates/new-exp/user_defined_funcs.py.j2.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from steps.core.common import StepError

TEXT_SUFFIXES = {".txt", ".md"}


# -- reconcile -------------------------------------------------------------------------------------

def reconcile_data(raw_dir: Path, text_column: str, label_column: str) -> Iterator[dict]:
    """Yield {"text", "label", "source"} records from CSV, JSONL, Parquet, or folders of text files
    named by their label (``raw/<label>/<doc>.txt``)."""
    files = sorted(p for p in Path(raw_dir).rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise StepError(f"no input files under {raw_dir}: check data.source")
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            yield from _csv(path, text_column, label_column)
        elif suffix in (".jsonl", ".json"):
            yield from _jsonl(path, text_column, label_column)
        elif suffix == ".parquet":
            yield from _parquet(path, text_column, label_column)
        elif suffix in TEXT_SUFFIXES and path.parent != Path(raw_dir):
            yield {"text": _read_text(path), "label": path.parent.name, "source": str(path.relative_to(raw_dir))}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a UTF-8 BOM (Windows editors) is not part of the text
    except UnicodeDecodeError as exc:
        raise StepError(f"{path}: not UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None


def _require(path: Path, columns, text_column: str, label_column: str) -> None:
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise StepError(f"{path}: column(s) {', '.join(missing)} not found (has: {', '.join(map(str, columns))}); "
                        "set data.text / data.label in the spec")


def _csv(path: Path, text_column: str, label_column: str) -> Iterator[dict]:
    """Rows as Excel and pandas save them (a UTF-8 BOM included). A row whose field count differs from the
    header's (an unquoted comma in the text, a cut line) is reported with its line, never re-aligned."""
    csv.field_size_limit(sys.maxsize)  # long documents exceed the default 128 KiB field limit
    with path.open(encoding="utf-8-sig", newline="") as fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, [])
            _require(path, header, text_column, label_column)
            text_at, label_at = header.index(text_column), header.index(label_column)
            for row in reader:
                source = f"{path.name}:{reader.line_num}"
                if len(row) != len(header) and any(cell.strip() for cell in row):
                    yield {"text": None, "label": None, "source": source,
                           "problem": f"{len(row)} field{'s' * (len(row) != 1)} where the header has {len(header)} (an unquoted "
                                      "delimiter in the text, or a cut line)"}
                elif row:
                    yield {"text": row[text_at], "label": row[label_at], "source": source}
        except UnicodeDecodeError as exc:
            raise StepError(f"{path}: not UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
        except csv.Error as exc:
            raise StepError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def _jsonl(path: Path, text_column: str, label_column: str) -> Iterator[dict]:
    for i, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StepError(f"{path}:{i}: invalid JSON ({exc.msg}); one JSON object per line") from None
        if i == 1:
            _require(path, row, text_column, label_column)
        yield {"text": row.get(text_column), "label": row.get(label_column), "source": f"{path.name}:{i}"}


def _parquet(path: Path, text_column: str, label_column: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    _require(path, table.column_names, text_column, label_column)
    for i, (text, label) in enumerate(zip(table[text_column].to_pylist(), table[label_column].to_pylist(), strict=True)):
        yield {"text": text, "label": label, "source": f"{path.name}:{i}"}


# -- prepare ---------------------------------------------------------------------------------------

def get_dataset_features(label_names: list[str]):
    """Features of the encoded dataset (what every model's prepared split holds)."""
    from datasets import ClassLabel, Features, Sequence, Value

    return Features({
        "input_ids": Sequence(Value("int32")),
        "attention_mask": Sequence(Value("int8")),
        "labels": ClassLabel(names=label_names),
        "doc_id": Value("int64"),
    })


def encode_data(batch: dict, tokenizer, model: dict) -> dict:
    """Tokenise a batch {"text", "labels", "doc_id"} into model inputs, one row per window.

    ``model`` holds max_length, long_documents (head | head+tail | sliding) and stride.
    """
    max_length, strategy = int(model["max_length"]), model["long_documents"]
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    texts = batch["text"]
    encoded = _encode_head(tokenizer, texts, budget) if strategy == "head" else token_ids(tokenizer, texts)
    prefix, suffix = special_tokens(tokenizer)
    out = {"input_ids": [], "attention_mask": [], "labels": [], "doc_id": []}
    for ids, label, doc_id in zip(encoded, batch["labels"], batch["doc_id"], strict=True):
        for window in _windows(ids, budget, strategy, int(model.get("stride", 0))):
            full = prefix + window + suffix
            out["input_ids"].append(full)
            out["attention_mask"].append([1] * len(full))
            out["labels"].append(label)
            out["doc_id"].append(doc_id)
    return out


@functools.lru_cache(maxsize=8)  # two tokenizer calls: a third of encoding one short served document
def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a single sequence ([CLS] … [SEP], <s> … </s>)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    return [], []


CHARS_PER_TOKEN = 6  # generous: English WordPiece/BPE tokens average about 4 characters


def token_ids(tokenizer, texts: list[str], budget: int | None = None) -> list[list[int]]:
    """Token ids of each text without special tokens, the first ``budget`` of them if given.

    A fast tokenizer is called through its Rust backend's ``encode_batch_fast`` (no offsets, no
    conversion of every field to Python lists), which is what ``tokenizer(...)`` runs underneath,
    once the backend holds no truncation or padding of its own; otherwise through ``tokenizer(...)``,
    which clears that state for the next batch.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (backend is not None and backend.truncation is None and backend.padding is None
            and backend.encode_special_tokens == bool(getattr(tokenizer, "split_special_tokens", False))):
        rows = [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    else:
        rows = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    return rows if budget is None else [row[:budget] for row in rows]


def _encode_head(tokenizer, texts: list[str], budget: int) -> list[list[int]]:
    """The first ``budget`` tokens of each text, tokenising only the start of a long text.

    A tokenizer reads the whole text before truncating, so long documents cost their full length.
    Where the tokenizer splits words at whitespace before tokenising them, the tokens of a text's
    start up to a space do not depend on what follows: a long text is cut at the last space before
    ``budget * CHARS_PER_TOKEN`` characters, and when that start yields more than ``budget`` tokens
    its first ``budget`` are exactly the whole text's. Otherwise the whole text is tokenised.
    """
    if not _splits_at_whitespace(tokenizer):
        return token_ids(tokenizer, texts, budget)
    cap = budget * CHARS_PER_TOKEN
    starts = [_start(text, cap) for text in texts]
    ids = token_ids(tokenizer, starts, budget + 1)
    redo = [i for i, (text, start) in enumerate(zip(texts, starts, strict=True))
            if len(start) < len(text) and len(ids[i]) <= budget]
    for i, row in zip(redo, token_ids(tokenizer, [texts[i] for i in redo], budget), strict=True):
        ids[i] = row
    return [row[:budget] for row in ids]


def _start(text: str, cap: int) -> str:
    """``text`` up to its last space before ``cap`` characters (all of it if short or no space is near)."""
    if len(text) <= cap:
        return text
    space = text.rfind(" ", cap // 2, cap)
    return text[:space] if space > 0 else text


def _splits_at_whitespace(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    return pre is not None and len(pre.pre_tokenize_str("ab cd")) >= 2  # [ab, cd], [ab, Ġcd], [▁ab, ▁cd]


def _windows(ids: list[int], budget: int, strategy: str, stride: int) -> list[list[int]]:
    if len(ids) <= budget or strategy == "head":
        return [ids[:budget]]
    if strategy == "head+tail":
        head = budget // 4  # the start and the end of a long document carry most of its label
        return [ids[:head] + ids[len(ids) - (budget - head):]]
    step = budget - stride
    return [ids[start:start + budget] for start in range(0, max(len(ids) - stride, 1), step)]


# -- train / export --------------------------------------------------------------------------------

def load_model(source: str, label_names: list[str], init: str):
    """A sequence classifier with a fresh head; ``init: random`` keeps the architecture, drops the weights."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    id2label = dict(enumerate(label_names))
    label2id = {label: i for i, label in id2label.items()}
    if init == "random":
        config = AutoConfig.from_pretrained(source, num_labels=len(label_names), id2label=id2label, label2id=label2id)
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(label_names), id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True)


def ordered_model_input_keys(tokenizer) -> list[str]:
    """The model's forward arguments, in order, that the TorchScript trace takes."""
    return ["input_ids", "attention_mask"]
