"""A job learns its pipeline execution without an execution id in its cache key (steps/core/execution.py):
a processing job from its own output URIs, a training job from the tag SageMaker Pipelines puts on it
(ListTags, against a moto server), nothing when neither is there."""

from __future__ import annotations

import json

import pytest
from test_aws import aws, moto_endpoint  # noqa: F401 - the moto server fixtures

from steps import contract
from steps.core import execution

ENV = ("SMPIPE_EXECUTION_ID", "SMPIPE_PIPELINE_EXECUTION_ARN", "TRAINING_JOB_ARN")


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(contract.OPT_ML_ENV, str(tmp_path / "opt" / "ml"))
    execution._tagged_execution_arn.cache_clear()


def test_a_processing_job_reads_its_execution_from_its_output_uris(tmp_path):
    config = tmp_path / "opt" / "ml" / "config" / "processingjobconfig.json"
    config.parent.mkdir(parents=True)
    uri = "s3://b/experiments/EXP-0001-x/runs/k3v9x2abcd/evaluation"
    config.write_text(json.dumps({"ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "code", "S3Output": {"S3Uri": "s3://b/experiments/code/x.tar.gz"}},
        {"OutputName": "evaluation", "S3Output": {"S3Uri": uri}}]}}))
    assert execution.execution_id() == "k3v9x2abcd"


def test_a_training_job_reads_the_tag_pipelines_puts_on_it(aws, monkeypatch):  # noqa: F811
    client = aws.client("sagemaker")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/exp-0001-x/execution/7hq2m0s1xyz9"
    job = client.create_training_job(
        TrainingJobName="exp1-train-minilm", RoleArn="arn:aws:iam::123456789012:role/ml-pipelines",
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/smpipe:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://acme-ml-experiments/out"},
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        Tags=[{"Key": "smpipe:experiment", "Value": "EXP-0001-x"}, {"Key": execution.EXECUTION_TAG, "Value": arn}])
    monkeypatch.setenv("TRAINING_JOB_ARN", job["TrainingJobArn"])
    assert execution.execution_id() == "7hq2m0s1xyz9"


def test_an_unreadable_tag_leaves_the_execution_unknown_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: as under network isolation
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("TRAINING_JOB_ARN", "arn:aws:sagemaker:us-east-1:123456789012:training-job/by-hand")
    assert execution.execution_id() is None
    assert "warning: this job's pipeline execution is unknown (ListTags failed" in capsys.readouterr().err


def test_the_definitions_own_value_and_the_local_stand_in_come_first(monkeypatch):
    monkeypatch.setenv("SMPIPE_PIPELINE_EXECUTION_ARN", "arn:local:pipeline/p/execution/local-20261207-1")
    assert execution.execution_id() == "local-20261207-1"
    monkeypatch.setenv("SMPIPE_EXECUTION_ID", "from-definition")
    assert execution.execution_id() == "from-definition"
