"""`make deploy` / `make undeploy`: an endpoint for the latest Approved model package of the experiment.

Model and endpoint-config names carry the package version and the pipeline execution that produced the
model (``EXP-…-v3-<execution id>``), so an endpoint traces back to its run. Deploying what is already
deployed changes nothing; a newer approved version updates the endpoint in place (no downtime).
"""

from __future__ import annotations

import re

from pipelines.aws.pipeline import AwsError, Clients, error_code
from pipelines.compile.builders.common import tags
from pipelines.compile.plan import Plan
from pipelines.spec.gpu_runtime import inference_ami

RUN_RE = re.compile(r"/runs/([^/]+)/")


def _package(plan: Plan, clients: Clients, version: int | None) -> dict:
    group, sm = plan.spec.register.group, clients.sagemaker
    pages = sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group, SortBy="CreationTime",
                                                              SortOrder="Descending")
    packages = [p for page in pages for p in page["ModelPackageSummaryList"]]
    if version is not None:
        chosen = next((p for p in packages if p.get("ModelPackageVersion") == version), None)
        if chosen is None:
            raise AwsError(f"{group} has no version {version} (versions: {_versions(packages)})")
        if chosen["ModelApprovalStatus"] != "Approved":
            raise AwsError(f"{group} version {version} is {chosen['ModelApprovalStatus']}, not Approved: approve it "
                           "in Studio (or update-model-package --model-approval-status Approved) before deploying")
    else:
        chosen = next((p for p in packages if p["ModelApprovalStatus"] == "Approved"), None)
        if chosen is None:
            raise AwsError(f"no Approved version in model package group {group} (versions: {_versions(packages)}); "
                           "approve one in Studio's model registry, or run the pipeline with "
                           "--param ApprovalStatus=Approved")
    return sm.describe_model_package(ModelPackageName=chosen["ModelPackageArn"])


def _versions(packages: list[dict]) -> str:
    return ", ".join(f"v{p.get('ModelPackageVersion', '?')} {p['ModelApprovalStatus']}"
                     for p in sorted(packages, key=lambda p: p.get("ModelPackageVersion", 0))) or "none"


def execution_of(package: dict) -> str:
    """The pipeline execution that made the package: its metadata, else the run folder in its artifact URL."""
    metadata = package.get("CustomerMetadataProperties") or {}
    if metadata.get("smpipe:execution-id"):
        return metadata["smpipe:execution-id"]
    found = RUN_RE.search(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
    return found.group(1) if found else "unknown"


def names(plan: Plan, package: dict) -> dict[str, str]:
    version = package["ModelPackageVersion"]
    run = re.sub(r"[^a-zA-Z0-9-]", "-", execution_of(package))[-20:].strip("-")
    model = f"{plan.pipeline_name[:36]}-v{version}-{run}"[:63].rstrip("-")
    kind = "sl" if plan.spec.deploy.serverless else "rt"
    return {"model": model, "config": f"{model[:59]}-{kind}", "endpoint": plan.spec.deploy.endpoint_name or plan.pipeline_name}


def _exists(call, **kwargs) -> bool:
    from botocore.exceptions import ClientError

    try:
        call(**kwargs)
        return True
    except ClientError as exc:
        if error_code(exc) in ("ValidationException", "ResourceNotFound"):
            return False
        raise


def _variant(plan: Plan, model: str) -> dict:
    deploy = plan.spec.deploy
    variant = {"VariantName": "AllTraffic", "ModelName": model}
    if deploy.serverless:
        variant["ServerlessConfig"] = {"MemorySizeInMB": deploy.serverless.memory_mb,
                                       "MaxConcurrency": deploy.serverless.max_concurrency}
    else:
        variant.update(InstanceType=deploy.instance_type, InitialInstanceCount=deploy.instance_count)
        if inference_ami(deploy.instance_type):  # the default AMI of g4dn/g5/p4d has driver 470: too old
            variant["InferenceAmiVersion"] = inference_ami(deploy.instance_type)
    return variant


def _create_model(plan: Plan, clients: Clients, name: str, package: dict) -> None:
    aws, container = plan.spec.aws, package["InferenceSpecification"]["Containers"][0]
    args = {"ModelName": name, "ExecutionRoleArn": aws.role, "Tags": tags(plan.spec),
            "PrimaryContainer": {"Image": container["Image"], "ModelDataUrl": container["ModelDataUrl"],
                                 "Environment": _environment(plan)},
            "EnableNetworkIsolation": aws.network_isolation}
    if aws.subnets:
        args["VpcConfig"] = {"Subnets": list(aws.subnets), "SecurityGroupIds": list(aws.security_groups)}
    clients.sagemaker.create_model(**args)


def _environment(plan: Plan) -> dict[str, str]:
    """The model's variables: SageMaker tells a serving container nothing of its instance, so the launcher's
    GPU check learns it here."""
    env = {"SMPIPE_EXPERIMENT": plan.spec.name}
    if not plan.spec.deploy.serverless:
        env["SMPIPE_INSTANCE_TYPE"] = plan.spec.deploy.instance_type
    return env


def _check_owner(plan: Plan, clients: Clients, endpoint: dict) -> None:
    """An existing endpoint of this name must carry this experiment's tag: deploy replaces its model and
    undeploy deletes it, so one that another experiment (or someone by hand) made is left alone."""
    sm = clients.sagemaker
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=endpoint["EndpointArn"]).get("Tags", [])}
    owner = tags.get("smpipe:experiment")
    if owner != plan.spec.name:
        made_by = f"experiment {owner}" if owner else "no smpipe experiment (no smpipe:experiment tag)"
        raise AwsError(f"endpoint {endpoint['EndpointName']} exists and was made by {made_by}, not "
                       f"{plan.spec.name}: nothing was changed. Set deploy.endpoint_name to a name of this "
                       "experiment's own")


def _endpoint(plan: Plan, clients: Clients, name: str) -> dict | None:
    """The endpoint of this name when it exists and belongs to this experiment; None when there is none."""
    if not _exists(clients.sagemaker.describe_endpoint, EndpointName=name):
        return None
    endpoint = clients.sagemaker.describe_endpoint(EndpointName=name)
    _check_owner(plan, clients, endpoint)
    return endpoint


def deploy(plan: Plan, clients: Clients, version: int | None = None) -> list[str]:
    """Create or update the endpoint; returns what was done, a line each."""
    sm, package = clients.sagemaker, _package(plan, clients, version)
    n, done = names(plan, package), []
    endpoint = _endpoint(plan, clients, n["endpoint"])  # before anything is created: a foreign one stops here
    if not _exists(sm.describe_model, ModelName=n["model"]):
        _create_model(plan, clients, n["model"], package)
        done.append(f"model {n['model']} created from {package['ModelPackageArn']}")
    if not _exists(sm.describe_endpoint_config, EndpointConfigName=n["config"]):
        args = {"EndpointConfigName": n["config"], "ProductionVariants": [_variant(plan, n["model"])],
                "Tags": tags(plan.spec)}
        if plan.spec.aws.kms_key and not plan.spec.deploy.serverless:
            args["KmsKeyId"] = plan.spec.aws.kms_key
        sm.create_endpoint_config(**args)
        done.append(f"endpoint config {n['config']} created")
    if endpoint is None:
        sm.create_endpoint(EndpointName=n["endpoint"], EndpointConfigName=n["config"], Tags=tags(plan.spec))
        done.append(f"endpoint {n['endpoint']} created with {n['config']}")
    elif endpoint["EndpointConfigName"] != n["config"]:
        sm.update_endpoint(EndpointName=n["endpoint"], EndpointConfigName=n["config"])
        done.append(f"endpoint {n['endpoint']} updated to {n['config']}")
    return done or [f"endpoint {n['endpoint']} already serves {n['model']}: nothing to do"]


def undeploy(plan: Plan, clients: Clients) -> list[str]:
    """Delete the endpoint, then every endpoint config and model deploy made for this experiment."""
    sm, endpoint, done = clients.sagemaker, plan.spec.deploy.endpoint_name or plan.pipeline_name, []
    if _endpoint(plan, clients, endpoint) is not None:
        sm.delete_endpoint(EndpointName=endpoint)
        done.append(f"endpoint {endpoint} deleted")
    prefix = f"{plan.pipeline_name[:36]}-v"
    for config in sm.list_endpoint_configs(NameContains=prefix, MaxResults=100)["EndpointConfigs"]:
        if config["EndpointConfigName"].startswith(prefix):
            sm.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
            done.append(f"endpoint config {config['EndpointConfigName']} deleted")
    for model in sm.list_models(NameContains=prefix, MaxResults=100)["Models"]:
        if model["ModelName"].startswith(prefix):
            sm.delete_model(ModelName=model["ModelName"])
            done.append(f"model {model['ModelName']} deleted")
    return done or [f"nothing deployed for {plan.pipeline_name}"]
