"""MLflow: one tree per execution in a real local store (SQLite): a parent run named by the execution id, a
child per step tagged with experiment, execution, step, code and data digests; a second execution is a second tree;
an unreachable server warns once and never fails the step."""

from __future__ import annotations

import socket
import time

import pytest

from steps.core import mlflow_tree, tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/x")
    monkeypatch.setenv("SMPIPE_MLFLOW_TRACKING_URI", uri)  # the local stand-in for the server
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "EXP-0042-minimal")
    monkeypatch.setenv("SMPIPE_EXPERIMENT", "EXP-0042-minimal")
    monkeypatch.setenv("SMPIPE_CODE_SHA256", "c0de")
    return uri


def execution(monkeypatch, execution_id: str, folder) -> None:
    monkeypatch.setenv("SMPIPE_EXECUTION_ID", execution_id)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    data = f"data-of-{execution_id}"
    tracking.log_step("Prepare", "prepare", folder, data, {"labels": 3}, {"documents/train": 24}, [])
    for model in ("a", "b"):
        run = mlflow_tree.StepRun(f"Train-{model}", data)
        run.params({"learning_rate": 1e-4})
        for epoch in (1, 2):
            run.metrics({"validation:macro_f1": 0.5 + epoch / 10, "train:loss": 1 / epoch}, step=epoch)
        run.end()
    tracking.log_step("Evaluate", "evaluate", folder, data, {"best": "a"}, {"a/test_macro_f1": 0.8, "b/test_macro_f1": 0.7},
                      [], execution_tags={"model_package_group": "g"})


def test_each_execution_is_one_tree_of_its_steps(store, monkeypatch, tmp_path):
    from mlflow import MlflowClient

    execution(monkeypatch, "exec-1", tmp_path)
    execution(monkeypatch, "exec-2", tmp_path)
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("EXP-0042-minimal")
    runs = client.search_runs([experiment.experiment_id])
    parents = {r.info.run_name: r for r in runs if r.data.tags.get("smpipe.kind") == "execution"}
    assert set(parents) == {"exec-1", "exec-2"}
    for execution_id, parent in parents.items():
        assert parent.data.tags["smpipe.model_package_group"] == "g"  # where the gate registers its model
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(r.info.run_name for r in children) == ["Evaluate", "Prepare", "Train-a", "Train-b"]
        for child in children:
            tags = child.data.tags
            assert tags["smpipe.execution_id"] == execution_id and tags["smpipe.step"] == child.info.run_name
            assert tags["smpipe.experiment"] == "EXP-0042-minimal" and tags["smpipe.code_sha256"] == "c0de"
            assert tags["smpipe.data_sha256"] == f"data-of-{execution_id}"
            assert child.info.status == "FINISHED"
        train = next(r for r in children if r.info.run_name == "Train-a")
        history = client.get_metric_history(train.info.run_id, "validation/macro_f1")
        assert [(m.step, round(m.value, 2)) for m in history] == [(1, 0.6), (2, 0.7)]
        assert train.data.params["learning_rate"] == "0.0001"


def test_an_unreachable_server_warns_once_and_the_step_goes_on(monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("SMPIPE_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("SMPIPE_EXECUTION_ID", "exec-3")
    started = time.monotonic()
    run = mlflow_tree.StepRun("Train-a")
    run.params({"x": 1})
    run.metrics({"y": 2.0}, step=1)
    run.end()
    err = capsys.readouterr().err
    assert err.count("warning: MLflow tracking failed for Train-a") == 1 and "the step goes on untracked" in err
    assert time.monotonic() - started < 60


def test_without_tracking_mlflow_nothing_is_tracked(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = mlflow_tree.StepRun("Prepare")
    run.metrics({"y": 1.0})
    run.end()
    assert run.client is None and capsys.readouterr().err == ""


ARN = "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/team"


@pytest.mark.parametrize("mlflow,extra,field,words", [
    (f"{{tracking_server_arn: '{ARN}', tracking_uri: 'https://m.acme'}}", "", "tracking.mlflow",
     "exactly one of tracking_server_arn or tracking_uri"),
    ("{experiment: x}", "", "tracking.mlflow", "exactly one of"),
    (f"{{tracking_server_arn: '{ARN.replace('us-east-1', 'eu-west-1')}'}}", "", "tracking.mlflow.tracking_server_arn",
     "in eu-west-1, but the jobs run in us-east-1"),
    ("{tracking_server_arn: 'arn:aws:kms:us-east-1:111122223333:key/x'}", "", "tracking.mlflow.tracking_server_arn",
     "an ARN of kms, not sagemaker"),
    ("{tracking_uri: 'ftp://m.acme'}", "", "tracking.mlflow.tracking_uri", "does not match"),
    (f"{{tracking_server_arn: '{ARN}'}}", "aws: {network_isolation: true}\n", "tracking.mlflow",
     "cannot reach an MLflow tracking server"),
])
def test_bad_mlflow_settings_are_refused_at_their_line(write_spec, mlflow, extra, field, words):
    from pipelines.spec.errors import SpecError
    from pipelines.spec.load import load

    head = ("name: EXP-0042-minimal\nregister: {group: g}\ndata: {source: 's3://bucket-a/raw/'}\n"
            "models:\n  - {name: m, source: 's3://bucket-a/m/'}\n")
    with pytest.raises(SpecError) as info:
        load(write_spec(head + f"tracking: {{mlflow: {mlflow}}}\n" + extra))
    hit = next((p for p in info.value.problems if p.path == field), None)
    assert hit is not None and words in hit.message, [str(p) for p in info.value.problems]


def test_a_sagemaker_mlflow_server_reaches_the_definition_and_the_role():
    from conftest import ROOT

    from pipelines.aws.iam import execution_policy
    from pipelines.compile.definition import definition
    from pipelines.compile.plan import plan
    from pipelines.spec.load import load

    the_plan = plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml",
                         [f"tracking.mlflow={{tracking_server_arn: '{ARN}', experiment: team-exp}}"]))
    compiled = __import__("json").loads(definition(the_plan))
    assert compiled["MlflowConfig"] == {"MlflowResourceArn": ARN, "MlflowExperimentName": "team-exp"}
    for step in (s for s in compiled["Steps"] if s["Type"] in ("Training", "Processing")):
        env = step["Arguments"]["Environment"]
        assert env["MLFLOW_TRACKING_URI"] == ARN and env["MLFLOW_EXPERIMENT_NAME"] == "team-exp"
        assert env["SMPIPE_EXECUTION_ID"] == {"Get": "Execution.PipelineExecutionId"}
    statements = execution_policy(the_plan)["Statement"]
    assert {"Sid": "Mlflow", "Effect": "Allow", "Action": "sagemaker-mlflow:*", "Resource": ARN} in statements
    plain = plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml"))
    assert __import__("json").loads(definition(plain))["MlflowConfig"] is None


def _package_metadata(compiled: dict) -> dict:
    steps = [*compiled["Steps"]]
    while steps:
        step = steps.pop()
        steps += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []) if "Arguments" in step else []
        if step["Type"] == "RegisterModel":
            return step["Arguments"]["CustomerMetadataProperties"]
    raise AssertionError("no RegisterModel step")


@pytest.mark.parametrize("override,expected", [
    (f"tracking.mlflow={{tracking_server_arn: '{ARN}', experiment: team-exp}}",
     {"smpipe:mlflow-experiment": "team-exp", "smpipe:wandb-project": "ticket-router"}),
    ("tracking.wandb={entity: acme, project: tickets}", {"smpipe:wandb-project": "acme/tickets"}),
    # CreateModelPackage refuses '(' in a metadata value: left out, never altered (the execution id still links)
    (f"tracking.mlflow={{tracking_server_arn: '{ARN}', experiment: 'team (nlp)'}}", {"smpipe:wandb-project": "ticket-router"}),
    ("tracking.wandb={mode: disabled}", {}),
])
def test_the_model_package_says_where_its_runs_are(override, expected):
    import json

    from conftest import ROOT

    from pipelines.compile.definition import definition
    from pipelines.compile.plan import plan
    from pipelines.spec.load import load

    the_plan = plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml", [override]))
    metadata = _package_metadata(json.loads(definition(the_plan)))
    assert metadata == {"smpipe:experiment": "EXP-0002-bert-vs-distilbert",
                        "smpipe:execution-id": {"Get": "Execution.PipelineExecutionId"}, **expected}
    evaluate = next(s for s in json.loads(definition(the_plan))["Steps"] if s["Name"] == "Evaluate")
    arguments = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--model-package-group") + 1] == the_plan.spec.register.group


def test_wandb_groups_a_jobs_run_by_its_execution_where_the_job_knows_it(monkeypatch, tmp_path):
    import wandb

    from steps.core import tracking

    calls = []
    monkeypatch.setattr(wandb, "init", lambda **kwargs: calls.append(kwargs) or "run")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("SMPIPE_EXPERIMENT", "EXP-0042-minimal")
    monkeypatch.setenv("SMPIPE_EXECUTION_ID", "exec-9")
    tracking.start({}, "m-train", str(tmp_path))
    monkeypatch.delenv("SMPIPE_EXECUTION_ID")
    tracking.start({}, "m-train", str(tmp_path))
    assert calls[0]["group"] == "exec-9" and calls[0]["tags"] == ["EXP-0042-minimal", "exec-9"]
    assert calls[0]["config"]["smpipe_execution_id"] == "exec-9"
    assert calls[1]["group"] == "EXP-0042-minimal" and calls[1]["tags"] == ["EXP-0042-minimal"]
