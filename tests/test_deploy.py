"""`make deploy` / `make undeploy` against a moto server: the latest Approved package, names that trace back
to the execution, a second deploy that changes nothing, clear errors; the update path with a stubbed client."""

from __future__ import annotations

import pytest
from test_aws import SPEC, aws, cli, moto_endpoint  # noqa: F401 - the moto server fixtures

from pipelines.aws.deploy import deploy, names
from pipelines.compile.plan import plan
from pipelines.spec.load import load

IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/smpipe:0.1.0"
RUN = "s3://acme-ml-experiments/experiments/EXP-0002-bert-vs-distilbert/runs/{}/best-model/model.tar.gz"


def register(sm, execution: str, approved: bool) -> str:
    inference = {"Containers": [{"Image": IMAGE, "ModelDataUrl": RUN.format(execution)}],
                 "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]}
    arn = sm.create_model_package(ModelPackageGroupName="ticket-router", InferenceSpecification=inference,
                                  ModelApprovalStatus="PendingManualApproval")["ModelPackageArn"]
    if approved:
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    return arn


def test_deploy_the_latest_approved_version_once_then_undeploy(aws, capsys):  # noqa: F811
    sm = aws.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="ticket-router")
    register(sm, "exec-aaa111", approved=False)
    rc, _, err = cli(capsys, "deploy", SPEC)
    assert rc == 1 and "no Approved version in model package group ticket-router (versions: v1 PendingManualApproval)" in err
    register(sm, "exec-bbb222", approved=True)
    register(sm, "exec-ccc333", approved=False)  # newer but not approved: not deployed
    rc, out, _ = cli(capsys, "deploy", SPEC)
    assert rc == 0 and "model EXP-0002-bert-vs-distilbert-v2-exec-bbb222 created" in out
    assert "endpoint EXP-0002-bert-vs-distilbert created with EXP-0002-bert-vs-distilbert-v2-exec-bbb222-rt" in out
    endpoint = sm.describe_endpoint(EndpointName="EXP-0002-bert-vs-distilbert")
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    model = sm.describe_model(ModelName="EXP-0002-bert-vs-distilbert-v2-exec-bbb222")
    assert model["PrimaryContainer"]["ModelDataUrl"] == RUN.format("exec-bbb222")
    rc, out, _ = cli(capsys, "deploy", SPEC)
    assert rc == 0 and "already serves EXP-0002-bert-vs-distilbert-v2-exec-bbb222: nothing to do" in out
    rc, _, err = cli(capsys, "deploy", SPEC, "--version", "3")
    assert rc == 1 and "version 3 is PendingManualApproval, not Approved" in err
    rc, out, _ = cli(capsys, "undeploy", SPEC)
    assert rc == 0 and "endpoint EXP-0002-bert-vs-distilbert deleted" in out and "model EXP-0002" in out
    assert not sm.list_models(NameContains="EXP-0002")["Models"]
    rc, out, _ = cli(capsys, "undeploy", SPEC)
    assert "nothing deployed" in out


def test_a_newer_approved_version_updates_the_endpoint_in_place():
    import boto3
    from botocore.stub import ANY, Stubber

    the_plan = plan(load(SPEC + "/experiment.yaml", ["deploy.serverless={memory_mb: 2048, without_kms_key: true}",
                                                     "aws.subnets=[]", "aws.security_groups=[]"]))
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    package = {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:111122223333:model-package/ticket-router/4",
               "ModelPackageVersion": 4, "ModelApprovalStatus": "Approved", "ModelPackageName": "ticket-router",
               "CreationTime": "2026-11-30", "ModelPackageStatus": "Completed",
               "ModelPackageStatusDetails": {"ValidationStatuses": []},
               "CustomerMetadataProperties": {"smpipe:execution-id": "exec-ddd444"},
               "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": RUN.format("x")}],
                                          "SupportedContentTypes": ["a"], "SupportedResponseMIMETypes": ["a"]}}
    n = names(the_plan, package)
    assert n["model"] == "EXP-0002-bert-vs-distilbert-v4-exec-ddd444" and n["config"].endswith("-sl")
    missing = {"service_error_code": "ValidationException", "service_message": "Could not find"}
    with Stubber(client) as stub:
        summary = {k: package[k] for k in ("ModelPackageArn", "ModelPackageVersion", "ModelApprovalStatus",
                                            "CreationTime", "ModelPackageStatus")}
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [summary]})
        stub.add_response("describe_model_package", package, {"ModelPackageName": package["ModelPackageArn"]})
        endpoint_arn = "arn:aws:sagemaker:us-east-1:111122223333:endpoint/z"
        old = {"EndpointName": n["endpoint"], "EndpointArn": endpoint_arn, "EndpointConfigName": "old-rt",
               "EndpointStatus": "InService", "CreationTime": "2026-11-29", "LastModifiedTime": "2026-11-29"}
        stub.add_response("describe_endpoint", old, {"EndpointName": n["endpoint"]})
        stub.add_response("describe_endpoint", old, {"EndpointName": n["endpoint"]})
        stub.add_response("list_tags", {"Tags": [{"Key": "smpipe:experiment", "Value": the_plan.spec.name}]},
                          {"ResourceArn": endpoint_arn})
        stub.add_client_error("describe_model", **missing)
        stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:111122223333:model/x"}, {
                          "ModelName": n["model"], "ExecutionRoleArn": ANY,
                          "PrimaryContainer": ANY, "Tags": ANY, "EnableNetworkIsolation": False})  # no VpcConfig
        stub.add_client_error("describe_endpoint_config", **missing)
        config_arn = "arn:aws:sagemaker:us-east-1:111122223333:endpoint-config/y"
        stub.add_response("create_endpoint_config", {"EndpointConfigArn": config_arn}, {
            "EndpointConfigName": n["config"], "Tags": ANY, "ProductionVariants": [{
                "VariantName": "AllTraffic", "ModelName": n["model"],
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]})
        stub.add_response("update_endpoint", {"EndpointArn": endpoint_arn},
                          {"EndpointName": n["endpoint"], "EndpointConfigName": n["config"]})
        done = deploy(the_plan, type("C", (), {"sagemaker": client})(), version=4)
        stub.assert_no_pending_responses()
    assert done[-1] == f"endpoint {n['endpoint']} updated to {n['config']}"


@pytest.mark.parametrize(("bad", "why"), [("deploy.instance_type=ml.m5.huge", "not an endpoint instance type"),
                                          ("deploy.serverless={memory_mb: 1000}", "deploy.serverless"),
                                          ("deploy.serverless={memory_mb: 2048}", "serverless endpoint cannot run in a VPC"),
                                          ("deploy.instance_type=ml.p3.2xlarge", "have no kernels in the image's torch")])
def test_bad_deploy_settings_are_refused_at_validate(bad, why, capsys):
    rc, _, err = cli(capsys, "validate", SPEC, bad)
    assert rc == 2 and "deploy." in err and why in " ".join(err.split())


@pytest.mark.parametrize(("instance_type", "ami"), [("ml.g5.xlarge", "al2-ami-sagemaker-inference-gpu-3-1"),
                                                    ("ml.g7.2xlarge", "al2023-ami-sagemaker-inference-gpu-4-1"),
                                                    ("ml.m5.xlarge", None)])
def test_a_gpu_endpoint_gets_an_ami_whose_driver_runs_the_image(instance_type, ami):
    """Without InferenceAmiVersion a g5 endpoint gets driver 470, too old for the image's CUDA 12.9 runtime."""
    from pipelines.aws.deploy import _environment, _variant

    the_plan = plan(load(SPEC + "/experiment.yaml", [f"deploy.instance_type={instance_type}"]))
    assert _variant(the_plan, "m").get("InferenceAmiVersion") == ami
    assert _environment(the_plan)["SMPIPE_INSTANCE_TYPE"] == instance_type  # the launcher's GPU check reads it


def test_an_endpoint_another_experiment_made_is_neither_replaced_nor_deleted(aws, capsys):  # noqa: F811
    sm = aws.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="ticket-router")
    register(sm, "exec-eee555", approved=True)
    sm.create_model(ModelName="theirs", ExecutionRoleArn="arn:aws:iam::111122223333:role/x",
                    PrimaryContainer={"Image": IMAGE})
    sm.create_endpoint_config(EndpointConfigName="theirs-rt", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "theirs", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}])
    for owner, words in (([{"Key": "smpipe:experiment", "Value": "EXP-0009-other"}], "made by experiment EXP-0009-other"),
                         ([], "made by no smpipe experiment")):
        sm.create_endpoint(EndpointName="EXP-0002-bert-vs-distilbert", EndpointConfigName="theirs-rt", Tags=owner)
        for command in ("deploy", "undeploy"):
            rc, out, err = cli(capsys, command, SPEC)
            assert rc == 1 and words in err and "nothing was changed" in err, (command, out, err)
        endpoint = sm.describe_endpoint(EndpointName="EXP-0002-bert-vs-distilbert")
        assert endpoint["EndpointConfigName"] == "theirs-rt"  # still theirs, still there
        assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["theirs"]  # nothing of ours was created
        sm.delete_endpoint(EndpointName="EXP-0002-bert-vs-distilbert")
