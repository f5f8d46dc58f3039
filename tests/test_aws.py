"""The AWS side against a real moto server on 127.0.0.1 (no network, no account)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

from pipelines.cli import main

SPEC = str(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert")
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint():
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    import boto3

    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"))
    iam = boto3.client("iam")
    iam.create_role(RoleName="ml-pipelines", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.create_role(RoleName="ml-pipelines-scheduler", AssumeRolePolicyDocument=json.dumps(TRUST))
    boto3.client("s3").create_bucket(Bucket="acme-ml-experiments")
    return boto3


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_upsert_twice_is_a_no_op_and_uploads_once(aws, capsys):
    rc, out, _ = cli(capsys, "upsert", SPEC)
    assert rc == 0 and "created" in out and "4 code bundle(s)" in out  # one per step kind's code identity
    assert "schedule: create EXP-0002-bert-vs-distilbert-weekly-retrain" in out
    assert "console.aws.amazon.com/sagemaker" in out
    rc, out, _ = cli(capsys, "upsert", SPEC)
    assert rc == 0 and ": unchanged" in out and "staged: 0 code bundle(s) and 0 file(s)" in out
    assert "schedules match the spec" in out
    sm = aws.client("sagemaker")
    described = sm.describe_pipeline(PipelineName="EXP-0002-bert-vs-distilbert")
    assert described["PipelineDescription"].startswith("Support-ticket routing")
    assert json.loads(described["PipelineDefinition"])["Version"] == "2020-12-01"
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket="acme-ml-experiments")["Contents"]]
    code = sorted(k for k in keys if k.startswith("experiments/code/"))
    assert len(code) == 4
    bodies = {aws.client("s3").get_object(Bucket="acme-ml-experiments", Key=k)["Body"].read() for k in code}
    assert len(bodies) == 1  # the same bundle under each step's identity


def test_upsert_updates_when_the_definition_changes(aws, capsys):
    cli(capsys, "upsert", SPEC)
    rc, out, _ = cli(capsys, "diff", SPEC, "train.hyperparameters.epochs=5")
    assert rc == 0 and '-      "DefaultValue": 3' in out and '+      "DefaultValue": 5' in out
    rc, out, _ = cli(capsys, "upsert", SPEC, "train.hyperparameters.epochs=5")
    assert ": updated" in out
    rc, out, _ = cli(capsys, "diff", SPEC, "train.hyperparameters.epochs=5")
    assert "no difference" in out


def test_upsert_applies_changed_tags_to_an_existing_pipeline(aws, capsys):
    cli(capsys, "upsert", SPEC)
    rc, out, _ = cli(capsys, "upsert", SPEC, "aws.tags.team=search")
    assert rc == 0 and "tags: 1 added or changed" in out
    arn = aws.client("sagemaker").describe_pipeline(PipelineName="EXP-0002-bert-vs-distilbert")["PipelineArn"]
    tags = {t["Key"]: t["Value"] for t in aws.client("sagemaker").list_tags(ResourceArn=arn)["Tags"]}
    assert tags["team"] == "search" and tags["smpipe:experiment"] == "EXP-0002-bert-vs-distilbert"
    rc, out, _ = cli(capsys, "upsert", SPEC, "aws.tags.team=search")
    assert "tags:" not in out


def test_upsert_refuses_the_placeholder_bucket(aws, capsys):
    rc, _, err = cli(capsys, "upsert", SPEC, "aws.bucket=smpipe-local")
    assert rc == 2 and "aws.bucket: smpipe-local is the local placeholder bucket" in err
    assert aws.client("sagemaker").list_pipelines()["PipelineSummaries"] == []  # refused before any call


def test_status_says_when_listing_steps_is_denied(aws, capsys, monkeypatch):
    from botocore.exceptions import ClientError

    from pipelines.aws import pipeline

    class Denying:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def list_pipeline_execution_steps(self, **kwargs):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListPipelineExecutionSteps")

    cli(capsys, "upsert", SPEC)
    sm = aws.client("sagemaker")
    sm.start_pipeline_execution(PipelineName="EXP-0002-bert-vs-distilbert")
    clients = pipeline.Clients("us-east-1")
    clients.sagemaker = Denying(sm)
    from pipelines.compile.plan import plan
    from pipelines.spec.load import load

    with pytest.raises(pipeline.AwsError, match="sagemaker:ListPipelineExecutionSteps"):
        pipeline.status(plan(load(SPEC + "/experiment.yaml")), clients)


def test_start_with_parameters_and_status(aws, capsys):
    cli(capsys, "upsert", SPEC)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="acme-raw")
    rc, _, err = cli(capsys, "start", SPEC)
    assert rc == 2 and "DataSource s3://acme-raw/tickets/2026-11/ holds no objects" in err  # refused before start
    s3.put_object(Bucket="acme-raw", Key="tickets/2026-11/part-0.csv", Body=b"body,queue\nhi,a\n")
    rc, out, _ = cli(capsys, "start", SPEC, "--param", "TrainInstanceCount=4", "--param", "GateThreshold=0.9")
    assert rc == 0 and "arn:aws:sagemaker" in out
    arn = out.strip()
    params = aws.client("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {"Name": "TrainInstanceCount", "Value": "4"} in params
    snapshot = next(p["Value"] for p in params if p["Name"] == "DataSnapshot")
    s3.put_object(Bucket="acme-raw", Key="tickets/2026-11/part-1.csv", Body=b"body,queue\nnew,b\n")
    rc, out, _ = cli(capsys, "start", SPEC)
    later = aws.client("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=out.strip())
    assert next(p["Value"] for p in later["PipelineParameters"] if p["Name"] == "DataSnapshot") != snapshot
    rc, out, _ = cli(capsys, "status", SPEC)
    assert rc == 0 and arn in out
    assert "step statuses unavailable from this endpoint" in out  # moto lacks ListPipelineExecutionSteps
    rc, _, err = cli(capsys, "start", SPEC, "--param", "Nope=1")
    assert rc == 2 and "unknown pipeline parameter 'Nope'; the pipeline has ApprovalStatus" in err


def test_schedules_are_created_updated_and_deleted(aws, capsys):
    cli(capsys, "upsert", SPEC)
    scheduler = aws.client("scheduler")
    name = "EXP-0002-bert-vs-distilbert-weekly-retrain"
    created = scheduler.get_schedule(Name=name)
    assert created["ScheduleExpression"] == "cron(0 3 ? * MON *)"
    assert created["ScheduleExpressionTimezone"] == "Europe/Berlin"
    request = json.loads(created["Target"]["Input"])
    assert created["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
    assert request == {"PipelineName": "EXP-0002-bert-vs-distilbert", "PipelineParameters": [
        {"Name": "DataSnapshot", "Value": "<aws.scheduler.scheduled-time>"},  # the mutable latest/ is read anew
        {"Name": "DataSource", "Value": "s3://acme-raw/tickets/latest/"}]}
    rc, out, _ = cli(capsys, "schedule", SPEC, "schedules.0.cron=0 4 ? * TUE *", "--dry-run")
    assert "update" in out and "cron(0 4 ? * TUE *)" in out
    assert scheduler.get_schedule(Name=name)["ScheduleExpression"] == "cron(0 3 ? * MON *)"  # dry run
    cli(capsys, "schedule", SPEC, "schedules.0.cron=0 4 ? * TUE *")
    assert scheduler.get_schedule(Name=name)["ScheduleExpression"] == "cron(0 4 ? * TUE *)"
    rc, out, _ = cli(capsys, "schedule", SPEC, "schedules=[]")
    assert f"delete {name}" in out
    assert scheduler.list_schedules()["Schedules"] == []


def test_role_that_sagemaker_cannot_assume_is_refused(aws, capsys):
    iam = aws.client("iam")
    iam.delete_role(RoleName="ml-pipelines")
    iam.create_role(RoleName="ml-pipelines", AssumeRolePolicyDocument=json.dumps(
        {**TRUST, "Statement": [{**TRUST["Statement"][0], "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    rc, _, err = cli(capsys, "upsert", SPEC)
    assert rc == 1 and "does not trust sagemaker.amazonaws.com" in err
    iam.delete_role(RoleName="ml-pipelines")
    rc, _, err = cli(capsys, "upsert", SPEC)
    assert rc == 1 and "execution role arn:aws:iam::111122223333:role/ml-pipelines" in err


def test_placeholder_role_is_refused_before_any_call(capsys):
    rc, _, err = cli(capsys, "upsert", str(ROOT / "experiments" / "EXP-0001-docstring-topics"))
    assert rc == 2 and "aws.role" in err and "local placeholder" in err
    assert "templates/text-classification.yaml:4:1: aws.role: arn:aws:iam::000000000000:" in err  # where aws: is set


def test_jobs_read_the_wandb_key_from_secrets_manager(aws, monkeypatch, capsys):
    from steps.core import tracking

    aws.client("secretsmanager").create_secret(Name="wandb/api-key", SecretString="k-123\n")
    assert tracking._fetch_key("wandb/api-key") == "k-123"
    monkeypatch.setenv("SMPIPE_WANDB_SECRET_ID", "wandb/api-key")
    monkeypatch.setenv("WANDB_MODE", "disabled")

    def never(secret_id):
        raise AssertionError(f"a disabled run fetched {secret_id}")

    monkeypatch.setattr(tracking, "_fetch_key", never)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runs = tracking.start({}, "x-train", "/tmp")
    assert runs.wandb is None and runs.mlflow is None  # disabled: not even fetched
    assert "k-123" not in capsys.readouterr().out
    definition = (ROOT / "tests" / "golden" / "EXP-0002-bert-vs-distilbert.json").read_text()
    assert "wandb/api-key" in definition and "WANDB_API_KEY" not in definition


def test_local_executor_runs_against_an_s3_endpoint(aws, moto_endpoint, tmp_path):
    """AWS_ENDPOINT_URL swaps the executor's local store for a real S3 API (here moto)."""
    from test_local_executor import FIXTURES
    from tiny import make_texts, write_jsonl

    from pipelines.compile import bundle
    from pipelines.local.executor import Execution, Options
    from pipelines.store import open_store
    from pipelines.store.s3 import S3Store

    store = open_store(tmp_path / "unused")
    assert isinstance(store, S3Store)
    aws.client("s3").create_bucket(Bucket="fixtures")
    (tmp_path / "experiment").mkdir()
    store.put_bytes("s3://fixtures/code/bundle.tar.gz", bundle.build(ROOT, tmp_path / "experiment"))
    write_jsonl(tmp_path / "raw" / "d.jsonl", make_texts(5))
    store.upload(tmp_path / "raw", "s3://fixtures/raw")
    options = Options(store=store, runs=tmp_path / "runs", registry=tmp_path / "registry", code_root=ROOT,
                      say=lambda line: None)
    outcome = Execution(json.loads((FIXTURES / "processing_condition.json").read_text()), options, "fixture").run()
    assert outcome.status == "Succeeded", outcome.failure
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket="fixtures", Prefix="runs/")["Contents"]]
    assert any(k.endswith("reconciled/data_report.json") for k in keys)


def test_generated_policies_are_valid_iam_documents(aws):
    """IAM's own grammar check (moto validates documents on CreatePolicy), not a string comparison."""
    from pipelines.aws.iam import policies
    from pipelines.compile.plan import plan
    from pipelines.spec.load import load

    docs = policies(plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml")))
    iam = aws.client("iam")
    for role, doc in docs.items():
        arn = iam.create_policy(PolicyName=f"smpipe-{role}", PolicyDocument=json.dumps(doc["policy"]))["Policy"]["Arn"]
        assert arn.endswith(f"smpipe-{role}")


def test_upsert_refuses_a_missing_local_folder_before_sending_anything(aws, capsys):
    rc, _, err = cli(capsys, "upsert", SPEC, "data.source=experiments/no-such-folder")
    assert rc == 2 and "<command line>:1:1: data.source: local folder not found" in err
    assert "no-such-folder" in err and "Traceback" not in err
    assert "Contents" not in aws.client("s3").list_objects_v2(Bucket="acme-ml-experiments")
    assert aws.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
