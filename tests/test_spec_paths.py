"""Local folders outside the project, credentials and system folders are refused at their line before anything
is staged (they would be copied into the store and, at upsert, into a shared S3 prefix); path values no file
system holds are clean errors, never an OSError."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.spec.rules_paths import DATA_ROOTS_ENV

HEAD = "name: EXP-0042-minimal\nregister: {group: minimal-group}\n"


def spec(data: str = "s3://bucket-a/raw/", model: str = "s3://bucket-a/models/bert/", extra: str = "") -> str:
    return HEAD + f"data: {{source: '{data}'}}\nmodels:\n  - {{name: bert, source: '{model}'}}\n" + extra


@pytest.fixture(autouse=True)
def _no_data_roots(monkeypatch):
    monkeypatch.delenv(DATA_ROOTS_ENV, raising=False)


def refused(write_spec, text: str) -> list:
    with pytest.raises(SpecError) as info:
        load(write_spec(text))
    return info.value.problems


@pytest.mark.parametrize("text,field,words", [
    (spec(data="/etc"), "data.source", "system or home folder"),
    (spec(data="/proc/self"), "data.source", "system or home folder"),
    (spec(data="~/.aws"), "data.source", "credentials folder"),
    (spec(data="~"), "data.source", "system or home folder"),
    (spec(model="~/.ssh/keys"), "models[0].source", "credentials folder"),
    (spec(model="../../../../.."), "models[0].source", "system or home folder"),
    (spec(data="../elsewhere"), "data.source", "lies outside the project"),
    (spec(extra="transform: {source: '../../scores'}\n"), "transform.source", "lies outside the project"),
    (spec(data="x" * 5000), "data.source", "is not a folder any file system holds"),
])
def test_folders_that_may_not_be_staged_are_refused_at_their_line(write_spec, text, field, words):
    problems = refused(write_spec, text)
    hit = next((p for p in problems if p.path == field), None)
    assert hit is not None and words in hit.message, [str(p) for p in problems]
    assert hit.file.endswith("experiment.yaml") and hit.line > 1


def test_folders_inside_the_project_or_an_allowed_root_are_accepted(write_spec, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    load(write_spec(spec(data="data")))
    outside = tmp_path.parent / f"{tmp_path.name}-shared-data"
    outside.mkdir()
    with pytest.raises(SpecError, match=DATA_ROOTS_ENV):
        load(write_spec(spec(data=str(outside))))
    monkeypatch.setenv(DATA_ROOTS_ENV, str(outside))
    load(write_spec(spec(data=str(outside))))


def test_a_credentials_folder_is_refused_even_under_an_allowed_root(write_spec, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOTS_ENV, str(tmp_path))
    (tmp_path / "data" / ".aws").mkdir(parents=True)
    assert "credentials folder" in refused(write_spec, spec(data=str(tmp_path / "data" / ".aws")))[0].message


def test_a_base_path_no_file_system_holds_is_a_clean_error(write_spec):
    problems = refused(write_spec, "base: " + "t" * 5000 + "\n" + spec())
    assert problems[0].path == "base" and "5,000 characters" in problems[0].message


def test_validate_refuses_etc_with_exit_2_and_no_traceback(write_spec):
    path = write_spec(spec(data="/etc"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(path.parent)}
    run = subprocess.run([sys.executable, "-m", "pipelines", "validate", str(path)], cwd=ROOT, capture_output=True,
                         text=True, env=env)
    assert run.returncode == 2 and "data.source" in run.stderr and "Traceback" not in run.stderr
