"""reconcile and prepare on small real inputs, and on the bad inputs users actually have."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import make_texts, write_jsonl

from steps import prepare, reconcile
from steps.core.common import StepError
from steps.core.defaults import _encode_head, _windows, encode_data, special_tokens, token_ids


def run_reconcile(raw, out, *extra):
    return reconcile.main(["--input", str(raw), "--output", str(out), *extra])


def test_reconcile_reports_what_it_dropped(tmp_path):
    rows = [{"text": "a fine text", "label": "x"}, {"text": "a fine text", "label": "x"},  # duplicate
            {"text": "  ", "label": "x"}, {"text": "no label", "label": ""},  # empty, unlabelled
            {"text": "same text", "label": "x"}, {"text": "same text", "label": "y"},  # conflicting
            {"text": "another", "label": "y"}]
    write_jsonl(tmp_path / "raw" / "d.jsonl", rows)
    assert run_reconcile(tmp_path / "raw", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["counts"] == {"read": 7, "duplicates": 1, "empty_text": 1, "missing_label": 1,
                                "conflicting_label_records": 2}
    assert report["records"] == 2 and len(report["snapshot_sha256"]) == 64
    lines = (tmp_path / "out" / "data.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["text"] for line in lines) == ["a fine text", "another"]


def test_reconcile_reads_csv_with_huge_fields_and_text_folders(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    big = "word " * 60000  # 300 KB: above Python's default csv field limit
    (raw / "d.csv").write_text(f"text,label\n\"{big}\",long\nshort one,short\n", encoding="utf-8")
    (raw / "topic").mkdir()
    (raw / "topic" / "doc1.txt").write_text("a document in a folder named by its label", encoding="utf-8")
    assert run_reconcile(raw, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["labels"] == {"long": 1, "short": 1, "topic": 1}


def test_reconcile_reads_csv_as_excel_saves_it_and_reports_misaligned_rows(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = ["text,label", "first fine text,alpha", "second fine text,beta",
             "an unquoted, comma,alpha",  # 3 fields: must not become label ' comma'
             '"a quoted, comma",beta', "cut line only", '"a text', 'over two lines",alpha', "one,two,three,four"]
    (raw / "excel.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")  # BOM + CRLF
    assert run_reconcile(raw, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["labels"] == {"alpha": 2, "beta": 2}  # BOM read: the 'text' column is found
    assert report["counts"]["malformed_rows"] == 3 and report["counts"]["read"] == 7
    sources = [m["source"] for m in report["counts"]["malformed_examples"]]
    assert sources == ["excel.csv:4", "excel.csv:6", "excel.csv:9"]
    assert "3 fields where the header has 2" in report["counts"]["malformed_examples"][0]["problem"]
    texts = [json.loads(line)["text"] for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert "a quoted, comma" in texts and "a text\r\nover two lines" in texts and "an unquoted" not in str(texts)
    assert "dropped 3 malformed row(s), e.g. excel.csv:4, excel.csv:6, excel.csv:9" in capsys.readouterr().out


def test_reconcile_reads_jsonl_with_a_bom(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "d.jsonl").write_bytes(b"\xef\xbb\xbf" + b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    assert run_reconcile(raw, tmp_path / "out") == 0
    assert json.loads((tmp_path / "out" / "data_report.json").read_text())["records"] == 2


def test_reconcile_snapshot_is_deterministic(tmp_path):
    write_jsonl(tmp_path / "raw" / "d.jsonl", make_texts(10))
    run_reconcile(tmp_path / "raw", tmp_path / "a")
    run_reconcile(tmp_path / "raw", tmp_path / "b")
    assert (tmp_path / "a" / "data.jsonl").read_bytes() == (tmp_path / "b" / "data.jsonl").read_bytes()


def test_reconcile_cap_keeps_every_label(tmp_path):
    write_jsonl(tmp_path / "raw" / "d.jsonl", make_texts(50))
    run_reconcile(tmp_path / "raw", tmp_path / "out", "--max-documents", "30")
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["records"] == 30 and set(report["labels"].values()) == {10}


@pytest.mark.parametrize("setup,expected", [
    (lambda raw: None, "no input files"),
    (lambda raw: (raw / "d.csv").write_bytes(b"text,label\ncaf\xe9,x\n"), "not UTF-8"),
    (lambda raw: (raw / "d.csv").write_text("body,label\nhello,x\n"), "column(s) text not found"),
    (lambda raw: (raw / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{broken\n'), "invalid JSON"),
    (lambda raw: (raw / "d.jsonl").write_text('{"text": "", "label": "x"}\n'), "no usable records"),
])
def test_reconcile_bad_input_fails_cleanly(tmp_path, setup, expected):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    setup(raw)
    with pytest.raises(StepError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        run_reconcile(raw, out)
    assert not (out / "data.jsonl").exists()  # nothing half-written


def prepared_records(tmp_path, rows):
    write_jsonl(tmp_path / "rec" / "data.jsonl", [{"doc_id": i, **r} for i, r in enumerate(rows)])
    return tmp_path / "rec"


def test_prepare_splits_once_for_every_model(tmp_path, tiny_model):
    rec = prepared_records(tmp_path, make_texts(30, words=30))
    (tmp_path / "pre").mkdir()
    for name in ("a", "b"):
        (tmp_path / "pre" / name).symlink_to(tiny_model)
    assert prepare.main(["--input", str(rec), "--pretrained", str(tmp_path / "pre"), "--output", str(tmp_path / "out"),
                         "--model", "a:32:head:0:", "--model", "b:16:sliding:4:"]) == 0
    from datasets import load_from_disk

    a, b = load_from_disk(str(tmp_path / "out" / "a")), load_from_disk(str(tmp_path / "out" / "b"))
    assert sorted(set(a["test"]["doc_id"])) == sorted(set(b["test"]["doc_id"]))  # same documents
    assert len(b["train"]) > len(a["train"])  # sliding windows: several rows per long document
    assert max(len(x) for x in a["train"]["input_ids"]) <= 32
    labels = json.loads((tmp_path / "out" / "labels.json").read_text())["labels"]
    assert labels == ["cooking", "space", "sports"]
    split = json.loads((tmp_path / "out" / "split.json").read_text())
    assert len(split["test"]) == 9 and not set(split["test"]) & set(split["train"])
    results = json.loads((tmp_path / "out" / "prepare_results.json").read_text())
    assert results["seconds"] > 0 and results["documents_per_second"] == pytest.approx(90 / results["seconds"], rel=0.05)


@pytest.mark.parametrize("rows,expected", [
    ([{"text": f"t{i}", "label": "only"} for i in range(10)], "only one label"),
    ([{"text": f"t{i}", "label": "a"} for i in range(10)] + [{"text": "lonely", "label": "b"}], "fewer than 3"),
])
def test_prepare_refuses_unsplittable_data(tmp_path, tiny_model, rows, expected):
    rec = prepared_records(tmp_path, rows)
    with pytest.raises(StepError, match=expected):
        prepare.main(["--input", str(rec), "--pretrained", str(tiny_model.parent), "--output", str(tmp_path / "o"),
                      "--model", "tiny:32:head:0:"])


def test_prepare_names_a_missing_model(tmp_path):
    rec = prepared_records(tmp_path, make_texts(5))
    with pytest.raises(StepError, match="no pretrained folder"):
        prepare.main(["--input", str(rec), "--pretrained", str(tmp_path / "none"), "--output", str(tmp_path / "o"),
                      "--model", "ghost:32:head:0:"])
    assert not (tmp_path / "o").exists()


def test_windows_strategies():
    ids = list(range(100))
    assert _windows(ids, 10, "head", 0) == [ids[:10]]
    head_tail = _windows(ids, 10, "head+tail", 0)[0]
    assert head_tail[:2] == [0, 1] and head_tail[-8:] == ids[-8:] and len(head_tail) == 10
    sliding = _windows(ids, 10, "sliding", 2)
    assert sliding[0] == ids[:10] and sliding[1][0] == 8 and sliding[-1][-1] == 99


def test_encode_adds_special_tokens(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    prefix, suffix = special_tokens(tok)
    assert prefix == [tok.cls_token_id] and suffix == [tok.sep_token_id]
    out = encode_data({"text": ["goal score team " * 20], "labels": [1], "doc_id": [7]}, tok,
                      {"max_length": 16, "long_documents": "sliding", "stride": 4})
    assert len(out["input_ids"]) > 1 and all(len(x) <= 16 for x in out["input_ids"])
    assert set(out["doc_id"]) == {7} and out["input_ids"][0][0] == tok.cls_token_id


def test_reconcile_reads_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "raw").mkdir()
    pq.write_table(pa.table({"text": ["one doc", "two doc"], "label": ["a", "b"]}), tmp_path / "raw" / "d.parquet")
    assert run_reconcile(tmp_path / "raw", tmp_path / "out") == 0
    assert json.loads((tmp_path / "out" / "data_report.json").read_text())["labels"] == {"a": 1, "b": 1}


def test_split_is_stratified_seeded_and_keeps_every_label_in_every_part():
    records = [{"doc_id": i, "text": str(i), "label": label}
               for i, label in enumerate(["a"] * 50 + ["b"] * 30 + ["c"] * 3 + ["d"] * 917)]
    parts = prepare.split(records, [0.8, 0.1, 0.1], seed=7)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [800, 100, 100]
    assert sorted(r["doc_id"] for rows in parts.values() for r in rows) == list(range(1000))
    for rows in parts.values():
        assert {r["label"] for r in rows} == {"a", "b", "c", "d"}
    test = Counter(r["label"] for r in parts["test"])
    assert test["a"] == 5 and test["b"] == 3 and test["d"] == 91  # proportional, the rare label takes its one
    assert parts == prepare.split(records, [0.8, 0.1, 0.1], seed=7)
    assert parts["test"] != prepare.split(records, [0.8, 0.1, 0.1], seed=8)["test"]


def test_split_refuses_fractions_that_leave_a_part_without_a_label():
    records = [{"doc_id": i, "text": str(i), "label": "ab"[i % 2]} for i in range(10)]
    with pytest.raises(StepError, match="data.splits"):
        prepare.split(records, [0.1, 0.1, 0.8], seed=0)


WORDS = st.sampled_from("goal orbit flour the a Ünïcödé 42 x-ray naïve".split() + ["", " ", "  ", "\n", "xxxxxxxxxxxxxxxx"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.lists(WORDS, max_size=400).map(" ".join), min_size=1, max_size=8),
       budget=st.integers(min_value=1, max_value=40))
def test_head_encoding_equals_truncating_the_whole_text(tiny_model, texts, budget):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    want = tok(texts, add_special_tokens=False, truncation=True, max_length=budget)["input_ids"]
    assert _encode_head(tok, texts, budget) == want
    assert token_ids(tok, texts) == tok(texts, add_special_tokens=False)["input_ids"]


def test_head_encoding_without_whitespace_splitting_tokenises_whole_texts(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    from tokenizers.pre_tokenizers import Punctuation

    tok.backend_tokenizer.pre_tokenizer = Punctuation()  # "words" span spaces: a cut at one could change a token
    tok.backend_tokenizer.enable_truncation(5)  # state of its own: the backend must not be called directly
    texts = ["goal, orbit " * 300, "flour"]
    want = tok(texts, add_special_tokens=False, truncation=True, max_length=20)["input_ids"]
    assert _encode_head(tok, texts, 20) == want and len(want[0]) == 20
