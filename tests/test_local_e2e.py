"""End to end in CI: a tiny experiment with tuning (3 trials), evaluate, gate and register, compiled
and run exactly as `make local` runs the example; then the failure paths of a broken metric regex
and a gate that is not met."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT
from tiny import make_texts, write_jsonl

SPEC = """\
name: EXP-0100-tiny-tuning
base: templates/text-classification.yaml
data: {{source: {data}}}
models:
  - {{name: tiny, source: {model}, max_length: 32}}
resources: {{training: {{instance_type: local}}, processing: {{instance_type: local}}, evaluation: {{instance_type: local}}}}
train: {{hyperparameters: {{epochs: 1, batch_size: 16, precision: fp32}}}}
steps: {{tune: true}}
tune:
  objective: {{metric: validation:macro_f1, direction: maximize}}
  ranges: {{learning_rate: "1e-4->3e-3", batch_size: "8,16"}}
  strategy: Random
  max_jobs: 3
  max_parallel_jobs: 1
gate: {{metric: test:accuracy, threshold: 0.0}}
register: {{group: tiny-group, approval: Approved}}
transform: {{source: {score}, content_type: text/csv, max_payload_mb: 1}}
tracking: {{mlflow: {{tracking_server_arn: "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/team"}}}}
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_model) -> dict:
    root = tmp_path_factory.mktemp("e2e")
    write_jsonl(root / "raw" / "data.jsonl", make_texts(30))
    (root / "score").mkdir()
    (root / "score" / "new.csv").write_text("".join(f'"{r["text"]}, again"\n' for r in make_texts(4, seed=5)))
    spec = root / "EXP-0100-tiny-tuning" / "experiment.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC.format(data=root / "raw", model=tiny_model, score=root / "score"), encoding="utf-8")
    store, runs = root / "store", root / "runs"
    result = cli("local", str(spec), "--store", str(store), "--runs", str(runs))
    return {"spec": spec, "store": store, "runs": runs, "result": result, "root": root}


def test_tuning_experiment_runs_end_to_end(experiment):
    result = experiment["result"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    state = json.loads(next(experiment["runs"].glob("local-*/state.json")).read_text())
    steps = state["steps"]
    assert {n: s["status"] for n, s in steps.items()} == {
        "Reconcile": "Succeeded", "Prepare": "Succeeded", "Tune-tiny": "Succeeded", "Evaluate": "Succeeded",
        "Gate": "Succeeded", "Register": "Succeeded", "MetricBelowThreshold": "NotRun", "BestModel": "Succeeded",
        "Transform": "Succeeded"}
    summaries = steps["Tune-tiny"]["properties"]["TrainingJobSummaries"]
    assert len(summaries) == 3
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
    assert values == sorted(values, reverse=True)  # best first, as SageMaker orders them
    assert {s["TunedHyperParameters"]["batch_size"] for s in summaries} <= {"8", "16"}
    registered = json.loads((experiment["runs"] / "registry" / "tiny-group" / "1.json").read_text())
    assert registered["ModelApprovalStatus"] == "Approved" and registered["ModelDataUrl"].endswith("/best-model/model.tar.gz")
    assert registered["CustomerMetadataProperties"] == {  # where its runs are: MLflow's, wandb's
        "smpipe:experiment": "EXP-0100-tiny-tuning", "smpipe:execution-id": state["execution_id"],
        "smpipe:mlflow-experiment": "EXP-0100-tiny-tuning", "smpipe:wandb-project": "EXP-0100-tiny-tuning"}
    assert "leaderboard (test set)" in result.stdout and "report:" in result.stdout
    flat = " ".join(result.stdout.split())
    assert "cloud estimate: the same step-seconds on the definition's instances" in flat
    assert "no price for local" in flat  # `local` instances have no price: said, not zeroed
    output = steps["Transform"]["properties"]["TransformOutput"]["S3OutputPath"]
    assert output.endswith(f"/runs/{state['execution_id']}/transform")
    scored = (experiment["store"] / output[5:] / "new.csv.out").read_text().splitlines()
    assert len(scored) == 12 and all(line.split(",")[0] in ("sports", "cooking", "space") for line in scored)
    results = json.loads((experiment["runs"] / state["execution_id"] / "results.json").read_text())
    assert f"logs and state: {experiment['runs'].resolve() / state['execution_id']}\n" in result.stdout  # never wrapped
    assert f"results: {experiment['runs'].resolve() / state['execution_id'] / 'results.json'}" in result.stdout
    assert results["steps"]["Evaluate"]["status"] == "Succeeded" and results["steps"]["Evaluate"]["seconds"] > 0
    assert set(results["scores"]) == {"tiny"} and 0 <= results["scores"]["tiny"]["test_macro_f1"] <= 1
    assert results["transform"] == {"lines": 12, "with_expected_label": 0, "as_expected": 0}
    assert results["commit"] and results["machine"]["cores"] and "torch" in results["versions"]
    raw = len((experiment["root"] / "raw" / "data.jsonl").read_text().splitlines())
    assert results["prepare"]["models"]["tiny"]["documents"] == raw


def test_every_job_step_shows_its_progress_on_the_terminal(experiment):
    """A long step is never silent: each job's progress lines (done, rate, time left) reach the terminal, the
    closing line of each phase always, the rest at a bounded rate (tests/test_terminal_output.py)."""
    out = experiment["result"].stdout
    assert re.search(r"^  … Prepare: prepare tiny: tokenising: 90/90 documents \(.*/s, .* in all\)$", out, re.M), out
    trials = re.findall(r"^  … (\S+): train tiny epoch 1/1: (\d+)/\2 batches \(.* in all\)$", out, re.M)
    assert len({job for job, _ in trials}) == 3, out  # one per tuning trial
    assert re.search(r"^  … Evaluate: evaluate tiny: test set: started, \d+ rows$", out, re.M), out
    assert "progress: " not in out  # the job's own marker stays in its log


def test_the_execution_is_one_mlflow_tree_in_the_local_store(experiment):
    """The definition names a SageMaker MLflow server; locally the jobs log to the runs' own SQLite store."""
    from mlflow import MlflowClient

    state = json.loads(next(experiment["runs"].glob("local-*/state.json")).read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{(experiment['runs'] / 'mlflow.db').resolve()}")
    runs = client.search_runs([client.get_experiment_by_name("EXP-0100-tiny-tuning").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("smpipe.kind") == "execution")
    assert parent.info.run_name == state["execution_id"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["Evaluate", "Prepare", "Train-tiny", "Train-tiny", "Train-tiny"]
    assert len({r.data.tags["smpipe.job"] for r in children if r.info.run_name == "Train-tiny"}) == 3  # one per trial
    evaluate = next(r for r in children if r.info.run_name == "Evaluate")
    assert "tiny/test_macro_f1" in evaluate.data.metrics
    assert {a.path for a in client.list_artifacts(evaluate.info.run_id)} >= {"report.md", "evaluation.json"}
    trial = next(r for r in children if r.info.run_name == "Train-tiny")
    assert client.get_metric_history(trial.info.run_id, "validation/macro_f1")
    assert f"MLflow: run {parent.info.run_id}" in " ".join(experiment["result"].stdout.split())
    assert parent.data.tags["smpipe.model_package_group"] == "tiny-group"
    data = json.loads(next(experiment["store"].rglob("prepare_results.json")).read_text())["data_sha256"]
    assert len(data) == 64 and {r.data.tags["smpipe.data_sha256"] for r in children} == {data}


def test_the_execution_is_one_wandb_group_of_offline_runs(experiment, tmp_path):
    """The spec's default wandb mode (offline): Prepare's and Evaluate's runs beside their outputs, each trial's
    in its output.tar.gz; all grouped by the execution, none of them reaching a training channel."""
    import tarfile

    from wandb_offline import runs_under

    state = json.loads(next(experiment["runs"].glob("local-*/state.json")).read_text())
    for i, archive in enumerate(experiment["store"].rglob("output.tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(tmp_path / str(i), filter="data")
    runs = runs_under(experiment["store"]) + runs_under(tmp_path)
    assert sorted(r["config"]["smpipe_step"] for r in runs) == ["Evaluate", "Prepare", "Train-tiny", "Train-tiny", "Train-tiny"]
    assert {r["group"] for r in runs} == {state["execution_id"]}
    prepared = next(r["folder"] for r in runs if r["config"]["smpipe_step"] == "Prepare")
    assert prepared.parent.parent.name == "_tracking" and prepared.parent.parent.parent.name == "prepared"
    assert not [p for p in experiment["store"].rglob("*") if p.is_symlink()]
    assert f"wandb: 5 offline run(s) in group {state['execution_id']}; `wandb sync " in experiment["result"].stdout


def test_the_mlflow_command_serves_the_local_store_and_stops_with_sigterm(experiment):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "mlflow", str(experiment["spec"]), "--runs",
                             str(experiment["runs"]), "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.monotonic() + 90, ""
        while time.monotonic() < deadline and not body:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
                                                 data=b'{"max_results": 10}', headers={"Content-Type": "application/json"})
                body = urllib.request.urlopen(request, timeout=5).read().decode()
            except OSError:
                time.sleep(1)
        assert "EXP-0100-tiny-tuning" in body, proc.stdout.read() if proc.poll() is not None else "no answer"
    finally:
        proc.terminate()  # the command execs the UI: SIGTERM reaches the server itself
        proc.wait(timeout=30)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens after the stop


def test_the_transform_check_counts_expected_labels(tmp_path):
    from pipelines.local.results import transform_check

    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.jsonl").write_text('{"text": "x", "expected": "space"}\n"plain"\n'
                                                     '{"text": "y", "expected": "cooking"}\n')
    (tmp_path / "out" / "sub" / "a.jsonl.out").write_text('{"label": "space"}\n{"label": "space"}\n'
                                                          '{"label": "sports"}\n')
    assert transform_check(tmp_path / "in", tmp_path / "out") == {"lines": 3, "with_expected_label": 2, "as_expected": 1}


def test_broken_metric_regex_fails_the_tuning_step(experiment):
    definition = json.loads(cli("definition", str(experiment["spec"])).stdout)
    tune = next(s for s in definition["Steps"] if s["Type"] == "Tuning")
    for item in tune["Arguments"]["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]:
        item["Regex"] = r"macro-f1 is ([0-9.]+)"  # what a typo in the printing side looks like
    path = experiment["root"] / "broken.json"
    path.write_text(json.dumps(definition))
    result = cli("execute", str(path), "--store", str(experiment["store"]), "--runs", str(experiment["runs"]),
                 "--no-cache")
    assert result.returncode == 1
    assert "objective metric 'validation:macro_f1' matched nothing in the log" in result.stdout


def test_a_gate_threshold_over_one_is_refused_before_anything_runs(experiment):
    result = cli("local", str(experiment["spec"]), "--store", str(experiment["store"]), "--runs",
                 str(experiment["runs"]), "--param", "GateThreshold=1.01")
    assert result.returncode == 2, result.stdout[-2000:]
    assert "GateThreshold=1.01" in result.stderr and "gate.threshold" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and not result.stdout


def test_unmet_gate_fails_and_registers_nothing(experiment):
    """A gate no model can pass (the definition's default raised past 1, which a spec cannot ask for) fails the
    execution after Evaluate and registers nothing."""
    definition = json.loads(cli("definition", str(experiment["spec"])).stdout)
    gate = next(p for p in definition["Parameters"] if p["Name"] == "GateThreshold")
    gate["DefaultValue"] = 1.01
    path = experiment["root"] / "unreachable-gate.json"
    path.write_text(json.dumps(definition))
    result = cli("execute", str(path), "--store", str(experiment["store"]), "--runs", str(experiment["runs"]))
    assert result.returncode == 1, result.stdout[-3000:]
    assert "Cached" in result.stdout  # nothing upstream re-ran: same arguments as the first execution
    assert "is below the threshold 1.01" in result.stdout
    assert not (experiment["runs"] / "registry" / "tiny-group" / "2.json").exists()


def test_a_cached_tuning_step_feeds_evaluate_its_own_best_model(experiment):
    """Evaluate re-runs while Tune is served from the cache: the best model is the cached tuning job's own
    (an earlier execution's folder), not a path under this execution that nothing wrote."""
    result = cli("local", str(experiment["spec"]), "--store", str(experiment["store"]), "--runs",
                 str(experiment["runs"]), "--from", "Evaluate")
    assert result.returncode == 0, result.stdout[-3000:]
    state = json.loads(sorted(experiment["runs"].glob("local-*/state.json"))[-1].read_text())
    assert state["steps"]["Tune-tiny"]["status"] == "Cached" and state["steps"]["Evaluate"]["status"] == "Succeeded"
