"""Notebook steps (compiled, validated, run here with papermill) and the environment commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import MINIMAL, ROOT
from nbformat.v4 import new_code_cell, new_notebook
from serving import free_port
from test_compile import compiled, steps_of

from pipelines.local.executor import Execution, Options
from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.store.local import LocalStore


def notebook(path: Path, *sources: str, parameters: str | None = "x = 1") -> Path:
    cells = ([new_code_cell(parameters, metadata={"tags": ["parameters"]})] if parameters else [])
    cells += [new_code_cell(s) for s in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                      "language": "python"}}), str(path))
    return path


def test_the_example_notebook_compiles_to_a_notebook_job_after_evaluate():
    defn = compiled("EXP-0001-docstring-topics")
    step = steps_of(defn)["Notebook-error-analysis"]
    args = step["Arguments"]
    assert step["Type"] == "Training" and step["DependsOn"] == ["Evaluate"]
    assert args["AlgorithmSpecification"]["ContainerEntrypoint"] == ["amazon_sagemaker_scheduler"]
    channel = args["InputDataConfig"][0]
    assert channel["ChannelName"] == "sagemaker_headless_execution_pipelinestep"
    assert "/EXP-0001-docstring-topics/notebooks/" in channel["DataSource"]["S3DataSource"]["S3Uri"]
    assert args["Environment"]["SM_INPUT_NOTEBOOK_NAME"] == "error_analysis.ipynb"
    hp = args["HyperParameters"]
    assert hp["evaluation_uri"] == {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}
    assert hp["top_k"] == "10" and "prepared_uri" in hp
    out = args["OutputDataConfig"]["S3OutputPath"]["Std:Join"]["Values"]
    assert out[1] == {"Get": "Execution.PipelineExecutionId"} and out[-2:] == ["notebooks", "error-analysis"]


def with_notebook(write_spec, entry: str, make=True, **kw):
    spec = write_spec(MINIMAL + f"notebooks: [{entry}]\n")
    if make:
        notebook(spec.parent / "notebooks" / "n.ipynb", "print(x)", **kw)
    return spec


@pytest.mark.parametrize(("entry", "make", "kw", "expected"), [
    ("{name: a, path: notebooks/missing.ipynb}", True, {}, "notebooks/missing.ipynb is not a file of the experiment"),
    ("{name: a, path: notebooks/n.ipynb, after: Evaluat}", True, {}, "'Evaluat' is not a step of this pipeline"),
    ("{name: a, path: notebooks/n.ipynb, parameters: {k: 1}}", True, {"parameters": None},
     "has no cell tagged 'parameters'"),
    ("{name: a, path: notebooks/n.ipynb, parameters: {k: $Nope}}", True, {}, "$Nope names no pipeline parameter"),
    ("{name: a_b, path: notebooks/n.ipynb}", True, {}, "notebooks[0].name"),
    ("{name: a, path: ../../outside.ipynb}", True, {}, "is not a file of the experiment folder"),
])
def test_bad_notebook_steps_are_refused_before_launch(write_spec, entry, make, kw, expected):
    with pytest.raises(SpecError) as info:
        load(with_notebook(write_spec, entry, make, **kw))
    hit = next(p for p in info.value.problems if expected in str(p))
    assert hit.line == 6 and hit.path.startswith("notebooks[0]"), str(hit)


def test_a_file_that_is_not_a_notebook_is_refused(write_spec):
    spec = write_spec(MINIMAL + "notebooks: [{name: a, path: notebooks/n.ipynb}]\n")
    (spec.parent / "notebooks").mkdir()
    (spec.parent / "notebooks" / "n.ipynb").write_text("{not json")
    with pytest.raises(SpecError, match="not a valid notebook"):
        load(spec)


def notebook_definition(store: LocalStore, tmp_path: Path, source: str) -> dict:
    path = notebook(tmp_path / "nb" / "n.ipynb", source, parameters='greeting = ""\ncount = "1"')
    store.upload(path, "s3://fixtures/notebooks/abc/n.ipynb")
    store.put_bytes("s3://fixtures/runs/data.txt", b"from the run")
    return {"Version": "2020-12-01", "Parameters": [], "Steps": [{"Name": "Notebook-n", "Type": "Training", "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File",
                                   "ContainerEntrypoint": ["amazon_sagemaker_scheduler"]},
        "InputDataConfig": [{"ChannelName": "sagemaker_headless_execution_pipelinestep", "DataSource": {
            "S3DataSource": {"S3Uri": "s3://fixtures/notebooks/abc/", "S3DataType": "S3Prefix"}}}],
        "Environment": {"SM_INPUT_NOTEBOOK_NAME": "n.ipynb", "SM_OUTPUT_NOTEBOOK_NAME": "out.ipynb",
                        "SM_KERNEL_NAME": "python3"},
        "HyperParameters": {"greeting": "hello", "count": "3", "data_uri": "s3://fixtures/runs/data.txt"},
        "OutputDataConfig": {"S3OutputPath": {"Std:Join": {"On": "/", "Values": [
            "s3://fixtures/runs", {"Get": "Execution.PipelineExecutionId"}, "notebooks", "n"]}}}}}]}


def run_notebook_step(tmp_path: Path, source: str):
    store, lines = LocalStore(tmp_path / "store"), []
    options = Options(store=store, runs=tmp_path / "runs", registry=tmp_path / "registry", code_root=ROOT,
                      say=lines.append)
    outcome = Execution(notebook_definition(store, tmp_path, source), options, "nb").run()
    return outcome, lines, store


def test_a_notebook_step_runs_here_with_its_parameters_and_the_run_data(tmp_path):
    source = ("import os\nfrom pathlib import Path\n"
              "text = (Path(os.environ['SMPIPE_LOCAL_STORE']) / data_uri[5:]).read_text()\n"
              "print(greeting * int(count), text)")
    outcome, _, store = run_notebook_step(tmp_path, source)
    assert outcome.status == "Succeeded", outcome.failure
    folder = store.path(f"s3://fixtures/runs/{outcome.execution_id}/notebooks/n")
    executed = nbformat.read(str(folder / "out.ipynb"), as_version=4)
    assert "hellohellohello from the run" in executed.cells[-1].outputs[0]["text"]
    assert (folder / "out.html").read_text().startswith("<!DOCTYPE html>")


def test_a_failing_cell_fails_the_step_with_the_cells_error(tmp_path):
    outcome, lines, store = run_notebook_step(tmp_path, "raise ValueError('no such label: ' + greeting)")
    assert outcome.status == "Failed"
    assert "raised ValueError: no such label: hello" in outcome.failure
    log = (outcome.folder / "logs" / "Notebook-n.log").read_text()
    assert "ValueError" in log and "no such label" in log
    assert any("ValueError" in line for line in lines)  # the traceback reaches the terminal
    assert (store.path(f"s3://fixtures/runs/{outcome.execution_id}/notebooks/n") / "out.ipynb").is_file()


def cli(*args: str, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})


def test_terminal_points_the_container_contract_at_the_latest_run(tmp_path):
    spec = str(ROOT / "experiments" / "EXP-0001-docstring-topics")
    proc = cli("terminal", spec, "--store", str(tmp_path / "s"), "--runs", str(tmp_path / "r"),
               "--command", "echo exp=$SMPIPE_EXPERIMENT; python -c 'import steps.contract as c; print(c.model_dir())'")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "latest run (none yet: make local exp=EXP-0001-docstring-topics)" in out
    assert "exp=EXP-0001-docstring-topics" in out and str(tmp_path / "r" / "terminal") in out


def test_docker_mode_without_docker_says_so(tmp_path):
    proc = cli("terminal", str(ROOT / "experiments" / "EXP-0001-docstring-topics"), "--docker", "--command", "true",
               "--store", str(tmp_path / "s"), "--runs", str(tmp_path / "r"), PATH=str(Path(sys.executable).parent))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "docker=1 needs Docker, which is not installed here" in out


def test_jupyter_starts_on_localhost_with_a_token_and_the_experiment_kernel(tmp_path):
    port = free_port()
    proc = cli("jupyter", str(ROOT / "experiments" / "EXP-0001-docstring-topics"), "--port", str(port),
               "--store", str(tmp_path / "s"), "--runs", str(tmp_path / "r"), SMPIPE_JUPYTER_TOKEN="t0ken")
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernelspecs?token=t0ken", timeout=2) as r:
                    status = json.loads(r.read())
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        assert status is not None and "exp-0001-docstring-topics" in status["kernelspecs"]
        with pytest.raises(urllib.error.HTTPError):  # no token, no access
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernelspecs", timeout=5)
    finally:
        proc.terminate()  # SIGTERM to the command: JupyterLab itself must stop, not only its parent
        proc.wait(timeout=30)
    assert_port_closed(port)


def assert_port_closed(port: int, seconds: float = 15) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"something still listens on 127.0.0.1:{port} after the command was stopped")
