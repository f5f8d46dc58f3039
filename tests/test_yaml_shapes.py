"""Pathological YAML shapes: depth, width, scalar length, documents, encodings. Whatever the shape,
loading ends in a valid spec or in `file:line:column` problems (short, never a traceback, exit 2)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from conftest import MINIMAL, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load

PROBLEM_RE = re.compile(r"^\S.*:\d+:\d+: ")
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1", "cp1252")


def nested(depth: int, width: int, kind: str, leaf: str):
    value = leaf
    for _ in range(depth):
        value = {f"k{i}": value for i in range(width)} if kind == "map" else [value] * width
    return value


@st.composite
def documents(draw) -> bytes:
    depth = draw(st.integers(0, 120))
    width = draw(st.integers(1, 3)) if depth > 8 else draw(st.integers(1, 60))
    leaf = draw(st.sampled_from(["x", "é" * draw(st.integers(0, 3000)), "a" * draw(st.integers(0, 700_000)), "1e999",
                                 "9" * 5000, "\u2028", "tab\there", "\x85next"]))
    shape = nested(depth, width, draw(st.sampled_from(["map", "list"])), leaf)
    where = draw(st.sampled_from(["description", "tags", "models", "top"]))
    base = yaml.safe_load(MINIMAL)
    if where == "top":
        base["extra"] = shape
    elif where == "tags":
        base["aws"] = {"tags": shape}
    elif where == "models":
        base["models"][0]["hyperparameters"] = shape
    else:
        base["description"] = shape
    flow = draw(st.booleans())
    text = yaml.safe_dump(base, default_flow_style=flow, allow_unicode=True, width=10**9)
    text += "".join(f"---\n{yaml.safe_dump(base)}" for _ in range(draw(st.integers(0, 2))))
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(documents())
def test_any_shape_ends_in_a_spec_or_positioned_problems(write_spec, data):
    path = write_spec()
    path.write_bytes(data)
    try:
        load(path)
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            text = str(problem)
            assert PROBLEM_RE.match(text), text[:200]
            assert len(text) < 1000, text[:200]


def cli_validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", "validate", str(path)], cwd=ROOT, capture_output=True,
                          text=True)


def test_the_command_exits_2_without_a_traceback_on_each_extreme(write_spec):
    path = write_spec()
    cases = {
        "deep": ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
        "documents": (MINIMAL + "---\n" + MINIMAL).encode(),
        "utf16": MINIMAL.encode("utf-16"),
        "nul": MINIMAL.encode() + b"description: a\x00b\n",
        "long-key": MINIMAL.encode() + b"k" * 900 + b": 1\n",
        "width": ("".join(f"k{i}: {i}\n" for i in range(60_000))).encode(),
    }
    for name, data in cases.items():
        path.write_bytes(data)
        result = cli_validate(path)
        assert result.returncode == 2, (name, result.stderr[-500:])
        assert "Traceback" not in result.stderr and result.stderr.startswith(str(path.relative_to(ROOT))
                                                                            if path.is_relative_to(ROOT) else str(path))
        assert all(len(line) < 1000 for line in result.stderr.splitlines()), name


def test_a_utf8_bom_is_read(write_spec):
    path = write_spec()
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load(path).spec.name == "EXP-0042-minimal"


def test_pattern_errors_never_show_a_long_or_secret_value(write_spec):
    with __import__("pytest").raises(SpecError) as info:
        load(write_spec(MINIMAL + "aws: {role: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', bucket: " + "b" * 300 + "}\n"))
    text = str(info.value)
    assert "wJalrXUtnFEMI" not in text and "not shown" in text and "b" * 100 not in text
