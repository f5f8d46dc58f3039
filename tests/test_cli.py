"""The command line: exit codes, messages without tracebacks, botocore-model validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import MINIMAL, ROOT

from pipelines.cli import main
from pipelines.compile import api_check
from pipelines.compile.golden import GOLDEN_DIR


def run_cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd, capture_output=True, text=True)


def test_invalid_spec_exits_2_without_traceback(write_spec):
    path = write_spec(MINIMAL + "trian: {}\ngate: {threshold: 3}\n")
    result = run_cli("definition", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "unknown key 'trian' (did you mean 'train'?)" in result.stderr
    assert "threshold 3.0 is outside [0, 1]" in result.stderr
    assert "2 problem(s) found." in result.stderr


def test_plan_prints_the_dag(capsys):
    assert main(["plan", str(ROOT / "experiments/EXP-0002-bert-vs-distilbert")]) == 0
    out = capsys.readouterr().out
    assert "Reconcile -> Prepare -> {Train-bert, Train-distilbert}" in out
    assert "TrainInstanceCount       Integer  2" in out


def test_validate_passes_for_examples(capsys):
    for name in ("EXP-0002-bert-vs-distilbert", "EXP-0003-tuning-minilm"):
        assert main(["validate", str(ROOT / "experiments" / name), "train.hyperparameters.epochs=1"]) == 0
    assert "every job step matches the SageMaker API" in capsys.readouterr().out


def test_api_check_catches_what_the_service_would_refuse():
    definition = json.loads((GOLDEN_DIR / "EXP-0002-bert-vs-distilbert.json").read_text())
    training = next(s for s in definition["Steps"] if s["Type"] == "Training")
    training["Arguments"]["HyperParameters"]["model_name"] = "x" * 3000  # service max is 2500
    del training["Arguments"]["RoleArn"]  # required by CreateTrainingJob
    training["Arguments"]["ResourceConfig"]["VolumeSizeInGB"] = "large"  # must be an integer
    problems = [str(p) for p in api_check.check_definition(json.dumps(definition), "x.yaml")]
    text = "\n".join(problems)
    assert "Missing required parameter" in text and "RoleArn" in text
    assert "VolumeSizeInGB" in text
    assert "3000 characters, at most 2500" in text


def test_api_check_accepts_golden_definitions():
    for path in sorted(GOLDEN_DIR.glob("*.json")):
        assert api_check.check_definition(path.read_text(), path.name) == [], path


@pytest.mark.parametrize("args,expected", [
    (["definition", "experiments/EXP-9999-none"], "file not found"),
    (["local", "experiments/EXP-0002-bert-vs-distilbert", "--param", "nonsense"], "not NAME=VALUE"),
])
def test_bad_command_lines_exit_2(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_a_reader_that_stops_early_is_not_an_error():
    import fcntl

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: smaller than the definition, so writing must block
    spec = "experiments/EXP-0003-tuning-minilm/experiment.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "definition", spec], cwd=ROOT,
                            stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    assert os.read(read_end, 1) == b"{"
    os.close(read_end)  # like `| head -c 1`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in stderr, stderr


def test_a_missing_local_folder_is_named_at_its_line_and_nothing_is_written(write_spec, tmp_path):
    spec = write_spec(MINIMAL.replace("s3://bucket-a/raw/", "data/raw").replace("s3://bucket-a/models/bert/", "models/bert"))
    store, runs = tmp_path / "store", tmp_path / "runs"
    result = run_cli("local", str(spec), "--store", str(store), "--runs", str(runs))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(line.endswith(f"experiment.yaml:2:8: data.source: local folder not found: {tmp_path / 'data' / 'raw'} "
                             "(a relative path is read from the project root; fix the path or give an s3:// URI)")
               for line in lines), result.stderr
    assert any("experiment.yaml:4:18: models[0].source: local folder not found" in line and "make model" in line
               for line in lines), result.stderr
    assert not store.exists() and not runs.exists()
