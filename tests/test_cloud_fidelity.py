"""What local runs and moto cannot show but real AWS refuses: KMS on local-storage instances, closed
parameter sets, per-execution data, tags on the model package, tracking under isolation."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from test_compile import compiled, steps_of

from pipelines.cli import main
from pipelines.compile.plan import plan
from pipelines.spec.instance_types import has_local_storage
from pipelines.spec.load import load

EXAMPLES = ("EXP-0001-docstring-topics", "EXP-0002-bert-vs-distilbert", "EXP-0003-tuning-minilm")
EXP2 = str(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert")


def job_volume(step: dict) -> tuple[dict, dict]:
    """(the resource config holding VolumeKmsKeyId, the parameter that sets its instance type)."""
    args = step["Arguments"]
    if step["Type"] == "Processing":
        return args["ProcessingResources"]["ClusterConfig"], args["ProcessingResources"]["ClusterConfig"]["InstanceType"]
    definition = args.get("TrainingJobDefinition", args)
    return definition["ResourceConfig"], definition["ResourceConfig"]["InstanceType"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_no_volume_kms_key_on_local_storage_instances(name):
    defn = compiled(name)
    defaults = {p["Name"]: p["DefaultValue"] for p in defn["Parameters"]}
    checked = 0
    for step in steps_of(defn).values():
        if step["Type"] not in ("Processing", "Training", "Tuning"):
            continue
        config, instance = job_volume(step)
        default = instance if isinstance(instance, str) else defaults[instance["Get"].split(".")[1]]
        if has_local_storage(default):
            assert "VolumeKmsKeyId" not in config, (name, step["Name"])
            checked += 1
    assert name != "EXP-0002-bert-vs-distilbert" or checked == 3  # two g5.12xlarge trainings, a g5 evaluation


def test_the_key_stays_on_ebs_only_instances():
    steps = steps_of(compiled("EXP-0002-bert-vs-distilbert"))
    assert steps["Prepare"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"].startswith("arn:aws:kms")


@pytest.mark.parametrize("name", EXAMPLES)
def test_closed_parameter_sets_carry_enum_values(name):
    params = {p["Name"]: p for p in compiled(name)["Parameters"]}
    assert params["ApprovalStatus"]["EnumValues"] == ["Approved", "PendingManualApproval", "Rejected"]
    for key in ("ProcessingInstanceType", "TrainInstanceType", "EvaluationInstanceType"):
        assert params[key]["DefaultValue"] in params[key]["EnumValues"] and len(params[key]["EnumValues"]) > 100
    assert "ml.p5.48xlarge" in params["TrainInstanceType"]["EnumValues"]
    assert "EnumValues" not in params["Epochs"] and "EnumValues" not in params["DataSource"]


def test_register_step_carries_the_experiment_tags():
    register = steps_of(compiled("EXP-0002-bert-vs-distilbert"))["Register"]["Arguments"]
    assert {"Key": "team", "Value": "support-ml"} in register["Tags"]
    assert {"Key": "smpipe:experiment", "Value": "EXP-0002-bert-vs-distilbert"} in register["Tags"]


@pytest.mark.parametrize("step", ["Reconcile", "Prepare"])
def test_data_snapshots_are_written_per_execution(step):
    output = steps_of(compiled("EXP-0002-bert-vs-distilbert"))[step]["Arguments"]["ProcessingOutputConfig"]
    uri = output["Outputs"][0]["S3Output"]["S3Uri"]["Std:Join"]["Values"]
    assert {"Get": "Execution.PipelineExecutionId"} in uri and uri[-2] == "data"


def test_local_raw_data_is_content_addressed(write_spec, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text('{"text": "x", "label": "y"}\n')
    path = write_spec(f"name: EXP-0042-minimal\ndata: {{source: {raw}}}\n"
                      "models: [{name: bert, source: s3://bucket-a/models/bert/}]\nregister: {group: g}\n")
    first = plan(load(path)).parameters["DataSource"].default
    assert plan(load(path)).parameters["DataSource"].default == first  # deterministic
    (raw / "a.jsonl").write_text('{"text": "x", "label": "z"}\n')
    second = plan(load(path)).parameters["DataSource"].default
    assert first != second and "/assets/raw/" in second and second.endswith("/")


def test_param_typo_and_storage_switch_are_refused_before_start(capsys):
    rc = main(["start", EXP2, "--param", "TrainInstanceType=ml.g5.12xlarg", "--param", "Epocs=2",
               "--param", "EvaluationInstanceType=ml.m5.xlarge"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "<command line>:1:1: --param TrainInstanceType: TrainInstanceType='ml.g5.12xlarg' is not a value " \
           "SageMaker accepts here (did you mean 'ml.g5.12xlarge'?)" in err
    assert "unknown pipeline parameter 'Epocs' (did you mean 'Epochs'?)" in err
    assert "EvaluationInstanceType=ml.m5.xlarge: it has no local storage, unlike the default ml.g5.xlarge" in err
    assert "3 problem(s) found." in err


def test_local_executor_refuses_values_outside_enum_values(tmp_path):
    from pipelines.local.expressions import ExpressionError
    from pipelines.local.graph import parameter_values

    defn = compiled("EXP-0001-docstring-topics")
    assert parameter_values(defn, {"ApprovalStatus": "Approved"})["ApprovalStatus"] == "Approved"
    with pytest.raises(ExpressionError, match="'Aproved' is not one of its EnumValues"):
        parameter_values(defn, {"ApprovalStatus": "Aproved"})


def test_a_failed_secret_fetch_keeps_offline_tracking(monkeypatch, tmp_path, capsys):
    import wandb

    from steps.core import tracking

    calls = []
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("SMPIPE_WANDB_SECRET_ID", "wandb/api-key")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setattr(tracking, "_fetch_key", lambda _: (_ for _ in ()).throw(ConnectionError("no route")))
    monkeypatch.setattr(wandb, "init", lambda **kwargs: calls.append(kwargs) or "run")
    assert tracking.start({}, "m-train", str(tmp_path)).wandb == "run"
    assert calls[0]["mode"] == "offline"
    assert "could not read the wandb key from Secrets Manager (ConnectionError); logging offline" in capsys.readouterr().err


def test_every_example_validates_against_the_api_model():
    from pipelines.compile.api_check import check_definition

    for name in EXAMPLES:
        assert check_definition(json.dumps(compiled(name)), name) == []


def test_local_run_refuses_bad_params_before_staging_anything(tmp_path, capsys):
    spec = str(ROOT / "experiments" / "EXP-0001-docstring-topics")
    rc = main(["local", spec, "--store", str(tmp_path / "store"), "--runs", str(tmp_path / "runs"),
               "--param", "Epochs=three"])
    assert rc == 2 and "--param Epochs: Epochs='three' is not an Integer" in capsys.readouterr().err
    assert not (tmp_path / "store").exists() and not (tmp_path / "runs").exists()
