"""Every figure in the README's measured tables comes from a result file: bench/results/index.json names, for
each table row, its figures in order and where each comes from (file, key, format). A number in a table
with no entry, or an entry whose file says otherwise, fails here. Tables are marked in the README with
``<!-- figures: NAME -->`` … ``<!-- /figures -->``; the first column (what is measured) and a "target"
column are not measurements."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

README = ROOT / "README.md"
INDEX = ROOT / "bench" / "results" / "index.json"
NUMBER = re.compile(r"(?<![A-Za-z\d.,])(?:\d+(?:\.\d+)?e[-+]?\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)")  # not p99, bf16
MARKED = re.compile(r"<!-- figures: ([\w-]+) -->\n(.*?)<!-- /figures -->", re.S)


def tables(text: str) -> dict[tuple[str, str], list[str]]:
    """(table, row label) → the numbers of the row's measured cells, in order."""
    rows = {}
    for name, body in MARKED.findall(text):
        lines = [line for line in body.splitlines() if line.startswith("|")]
        header = [cell.strip().lower() for cell in lines[0].strip("|").split("|")]
        for line in lines[2:]:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            measured = [c for c, h in zip(cells[1:], header[1:], strict=False) if h != "target"]
            rows[(name, cells[0])] = [n for cell in measured for n in NUMBER.findall(cell.replace("**", ""))]
    return rows


def resolve(entry: dict):
    data = json.loads((ROOT / entry["file"]).read_text(encoding="utf-8"))
    for key in entry["key"]:
        data = data[key]
    if entry.get("of") == "len":
        data = len(data)
    data = data * entry.get("scale", 1)
    return data / resolve(entry["divide_by"]) if "divide_by" in entry else data  # a ratio of two figures


def index() -> list[dict]:
    return json.loads(INDEX.read_text(encoding="utf-8"))["figures"]


def indexed() -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for entry in index():
        out.setdefault((entry["table"], entry["row"]), []).append(entry["figure"])
    return out


def test_the_readme_has_measured_tables():
    assert {name for name, _ in tables(README.read_text(encoding="utf-8"))} >= {"example", "cpu", "gpu"}


def test_every_number_of_the_readme_tables_is_in_the_index_in_order():
    found, known = tables(README.read_text(encoding="utf-8")), indexed()
    wrong = {row: (numbers, known.get(row)) for row, numbers in found.items() if numbers != known.get(row, [])}
    assert wrong == {}, wrong
    assert set(known) <= set(found), set(known) - set(found)  # no entry for a row the README lost


@pytest.mark.parametrize("entry", index(), ids=lambda e: f"{e['table']}:{e['row'][:30]}:{e['figure']}")
def test_each_indexed_figure_is_what_its_result_file_says(entry):
    assert entry["format"].format(resolve(entry)) == entry["figure"], (entry, resolve(entry))


def test_each_result_file_says_where_it_comes_from():
    """Commit and date in the file and its name; a file from before that rule is marked legacy, with why."""
    for name in sorted({e["file"] for e in index() if not e.get("legacy")}):
        data = json.loads((ROOT / name).read_text(encoding="utf-8"))
        origin = data.get("environment", data)
        assert origin.get("commit") and origin.get("date"), name
        assert Path(name).name.split("-")[3] in str(origin["commit"]), name  # the name carries the commit
    assert all("before" in e["legacy"] for e in index() if e.get("legacy"))


def test_a_changed_figure_is_caught():
    text = README.read_text(encoding="utf-8")
    (table, row), numbers = next(iter(tables(text).items()))
    line = next(line for line in text.splitlines() if line.startswith(f"| {row} |"))
    changed = text.replace(line, line.replace(numbers[0], "9" + numbers[0], 1))
    assert tables(changed)[(table, row)] != indexed()[(table, row)]
