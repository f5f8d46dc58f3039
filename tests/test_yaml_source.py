"""The YAML layer: safe, positioned, and never lets a yaml or pydantic exception escape."""

from __future__ import annotations

import pytest
from conftest import MINIMAL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.spec.yaml_source import MAX_BYTES, load_text


def test_positions_point_at_keys():
    doc = load_text("a: 1\nb:\n  c: [1, 2]\n", "f.yaml")
    assert doc.positions[("b", "c")] == ("f.yaml", 3, 3)
    assert doc.where(("b", "c", 1, "missing")) == ("f.yaml", 3, 10)
    assert doc.where(("b", "zzz")) == ("f.yaml", 2, 1)


@pytest.mark.parametrize("text,expected", [
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("a: [1, 2\n", "invalid YAML"),
    ("", "the file is empty"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("a: !!python/object:os.system {}\n", "unsupported YAML tag"),
    ("base: &x {a: 1}\nother:\n  <<: *x\n", "merge keys"),
])
def test_bad_yaml_is_refused(text, expected):
    with pytest.raises(SpecError) as info:
        load_text(text, "f.yaml")
    assert expected in str(info.value)


def test_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, 9)]
    with pytest.raises(SpecError, match="too many values"):
        load_text("\n".join(lines) + "\n", "bomb.yaml")


def test_huge_file_is_refused(write_spec):
    path = write_spec(MINIMAL + "# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(SpecError, match="larger than"):
        load(path)


def test_non_utf8_file_is_refused(write_spec):
    path = write_spec()
    path.write_bytes(MINIMAL.encode() + b"description: caf\xe9\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load(path)


def test_missing_file_and_missing_base(write_spec, tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="base template 'templates/none.yaml' not found"):
        load(write_spec(MINIMAL + "base: templates/none.yaml\n"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_nothing_but_spec_error_escapes_the_loader(write_spec, text):
    path = write_spec(text)
    try:
        load(path)
    except SpecError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet="abcdefgh.=0123456789[]", max_size=30), max_size=4))
def test_nothing_but_spec_error_escapes_overrides(write_spec, overrides):
    try:
        load(write_spec(), overrides)
    except SpecError:
        pass
