"""Compilation: golden definitions, determinism, purity, and what each builder puts in the JSON."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from functools import cache

import botocore.credentials
import pytest
from conftest import ROOT

from pipelines.compile.definition import definition
from pipelines.compile.golden import GOLDEN_DIR, example_specs, render
from pipelines.compile.plan import plan
from pipelines.spec.load import load
from steps import contract

PROVIDERS = ("SharedCredentialProvider", "ConfigProvider", "InstanceMetadataProvider", "ContainerProvider",
             "ProcessProvider", "SSOProvider", "AssumeRoleProvider", "BotoProvider", "OriginalEC2Provider")


@cache
def compiled(name: str) -> dict:
    return json.loads(render(ROOT / "experiments" / name / "experiment.yaml"))


def steps_of(defn: dict) -> dict:
    out = {}
    for step in defn["Steps"]:
        out[step["Name"]] = step
        for nested in step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []):
            out[nested["Name"]] = nested
    return out


@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: p.parent.name)
def test_golden_definition_matches(spec):
    expected = (GOLDEN_DIR / f"{spec.parent.name}.json").read_text(encoding="utf-8")
    first, second = render(spec), render(spec)
    assert first == second, "two renders in one process differ"
    assert first == expected, f"definition changed: run `make golden` if intended ({spec.parent.name})"


def test_definition_is_identical_in_a_fresh_process():
    spec = "experiments/EXP-0003-tuning-minilm/experiment.yaml"
    out = subprocess.run([sys.executable, "-m", "pipelines", "definition", spec], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == definition(plan(load(ROOT / spec)))  # the real code identities, byte for byte across processes
    assert json.loads(out)["Version"] == "2020-12-01"


def test_compile_opens_no_socket_and_reads_no_credentials(monkeypatch):
    def no_socket(*args, **kwargs):
        raise AssertionError("compilation tried to open a network connection")

    def no_credentials(*args, **kwargs):
        raise AssertionError("compilation tried to resolve AWS credentials")

    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    for provider in PROVIDERS:  # every link of the chain that reads a user's credentials
        monkeypatch.setattr(getattr(botocore.credentials, provider), "load", no_credentials)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for module in [m for m in sys.modules if m.startswith("sagemaker")]:  # import-time effects count too
        monkeypatch.delitem(sys.modules, module)
    spec = ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml"
    assert json.loads(definition(plan(load(spec))))["Steps"]
    assert "AWS_ACCESS_KEY_ID" not in os.environ  # the placeholder keys do not leak out


def test_dag_shape_for_a_comparison():
    steps = steps_of(compiled("EXP-0002-bert-vs-distilbert"))
    assert {"Reconcile", "Prepare", "Train-bert", "Train-distilbert", "Evaluate", "Gate", "Register",
            "MetricBelowThreshold"} == set(steps)
    assert steps["Train-bert"]["Type"] == "Training" and steps["Register"]["Type"] == "RegisterModel"
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["Evaluate"]["Arguments"]["ProcessingInputs"]}
    assert inputs["model-bert"] == {"Get": "Steps.Train-bert.ModelArtifacts.S3ModelArtifacts"}
    train_channel = steps["Train-bert"]["Arguments"]["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"]
    assert train_channel["Std:Join"]["Values"] == [
        {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['prepared'].S3Output.S3Uri"}, "bert"]


def test_parameters_are_typed_with_defaults():
    params = {p["Name"]: p for p in compiled("EXP-0002-bert-vs-distilbert")["Parameters"]}
    assert params["TrainInstanceCount"] == {"Name": "TrainInstanceCount", "Type": "Integer", "DefaultValue": 2}
    assert params["LearningRate"]["Type"] == "Float" and params["GateThreshold"]["DefaultValue"] == 0.85
    assert params["DataSource"]["DefaultValue"] == "s3://acme-raw/tickets/2026-11/"
    assert all("DefaultValue" in p for p in params.values())
    training = steps_of(compiled("EXP-0002-bert-vs-distilbert"))["Train-bert"]["Arguments"]
    assert training["HyperParameters"]["learning_rate"] == {"Std:Join": {"On": "", "Values": [
        {"Get": "Parameters.LearningRate"}]}}
    assert training["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainInstanceCount"}


def test_security_settings_reach_every_job():
    for step in steps_of(compiled("EXP-0002-bert-vs-distilbert")).values():
        args = step["Arguments"]
        if step["Type"] == "Processing":
            assert args["NetworkConfig"]["EnableNetworkIsolation"] is False  # the jobs read the wandb secret
            assert args["NetworkConfig"]["VpcConfig"]["Subnets"] == ["subnet-0a1b2c3d4e5f67890"]
            assert args["ProcessingOutputConfig"]["KmsKeyId"].startswith("arn:aws:kms:")
            assert {"Key": "team", "Value": "support-ml"} in args["Tags"]
        if step["Type"] == "Training":
            assert args["EnableNetworkIsolation"] is False and args["EnableInterContainerTrafficEncryption"] is True
            assert args["VpcConfig"]["SecurityGroupIds"] == ["sg-0123456789abcdef0"]
            assert args["EnableManagedSpotTraining"] is True
            assert args["CheckpointConfig"]["LocalPath"] == contract.TRAIN_CHECKPOINTS
            # one folder per execution: a new execution can never find (and resume) another's checkpoints
            assert {"Get": "Execution.PipelineExecutionId"} in args["CheckpointConfig"]["S3Uri"]["Std:Join"]["Values"]
            assert args["StoppingCondition"]["MaxWaitTimeInSeconds"] == 72000
            assert "wandb/api-key" == args["Environment"]["SMPIPE_WANDB_SECRET_ID"]
            assert not any("WANDB_API_KEY" in k for k in args["Environment"])


def test_cache_and_retry_policies_on_job_steps():
    for step in steps_of(compiled("EXP-0002-bert-vs-distilbert")).values():
        if step["Type"] in ("Processing", "Training"):
            assert step["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
            kinds = {e for policy in step["RetryPolicies"] for e in policy["ExceptionType"]}
            assert {"Step.SERVICE_FAULT", "Step.THROTTLING", "SageMaker.CAPACITY_ERROR"} <= kinds
        assert step.get("DisplayName") and step.get("Description")


def test_tuning_step_from_compact_ranges():
    steps = steps_of(compiled("EXP-0003-tuning-minilm"))
    tuning = steps["Tune-minilm"]["Arguments"]
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3}
    ranges = config["ParameterRanges"]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "batch_size", "Values": ["16", "32"]}]
    cont = {r["Name"]: r for r in ranges["ContinuousParameterRanges"]}
    assert cont["learning_rate"]["MinValue"] == "1e-05" and cont["warmup_ratio"]["ScalingType"] == "Linear"
    static = tuning["TrainingJobDefinition"]["StaticHyperParameters"]
    assert "learning_rate" not in static and "batch_size" not in static and static["model_name"] == "minilm"
    model_input = {i["InputName"]: i for i in steps["Evaluate"]["Arguments"]["ProcessingInputs"]}["model-minilm"]
    values = model_input["S3Input"]["S3Uri"]["Std:Join"]["Values"]
    # the cached tuning job's own output, never a path rebuilt under this execution's id
    assert values == [{"Get": "Steps.Tune-minilm.TrainingJobDefinition.OutputDataConfig.S3OutputPath"},
                      {"Get": "Steps.Tune-minilm.BestTrainingJob.TrainingJobName"}, "output/model.tar.gz"]
    assert "PipelineExperimentConfig" not in json.dumps({k: v for k, v in compiled("EXP-0003-tuning-minilm").items()
                                                         if v is not None})  # the role needs no Experiments actions


def test_metric_definitions_come_from_the_contract():
    training = steps_of(compiled("EXP-0002-bert-vs-distilbert"))["Train-bert"]["Arguments"]
    assert training["AlgorithmSpecification"]["MetricDefinitions"] == contract.metric_definitions()


def test_gate_reads_the_evaluation_property_file():
    steps = steps_of(compiled("EXP-0002-bert-vs-distilbert"))
    assert steps["Evaluate"]["PropertyFiles"] == [{"PropertyFileName": "Evaluation", "OutputName": "evaluation",
                                                   "FilePath": contract.EVALUATION_FILE}]
    condition = steps["Gate"]["Arguments"]["Conditions"][0]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "best.test_macro_f1"
    assert condition["RightValue"] == {"Get": "Parameters.GateThreshold"}
    register = steps["Register"]["Arguments"]
    assert register["ModelPackageGroupName"] == "ticket-router"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ApprovalStatus"}


def test_code_is_content_addressed_and_runs_are_per_execution():
    defn = compiled("EXP-0002-bert-vs-distilbert")
    prepare = steps_of(defn)["Prepare"]["Arguments"]
    code = {i["InputName"]: i["S3Input"] for i in prepare["ProcessingInputs"]}["code"]
    assert code["S3Uri"].startswith("s3://acme-ml-experiments/experiments/code/") and code["S3Uri"].endswith(".tar.gz")
    assert code["LocalPath"] == contract.PROC_CODE
    out = steps_of(defn)["Train-bert"]["Arguments"]["OutputDataConfig"]["S3OutputPath"]["Std:Join"]["Values"]
    assert out[0].endswith("/EXP-0002-bert-vs-distilbert/runs")
    assert out[1] == {"Get": "Execution.PipelineExecutionId"}
    assert prepare["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]["Std:Join"]["Values"][-2:] == \
        ["data", "prepared"]


def test_code_change_changes_the_code_uris(write_spec):
    path = write_spec()
    before = plan(load(path)).code_uris
    (path.parent / "extra.txt").write_text("new", encoding="utf-8")
    after = plan(load(path)).code_uris
    assert set(after) == {"reconcile", "prepare", "train", "evaluate"}
    assert all(after[k] != before[k] for k in after)  # a file of the experiment's code: every step runs it


def test_committed_schema_is_current():
    from pipelines.spec.schema import SCHEMA_PATH, schema_text

    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run `make schema`"
