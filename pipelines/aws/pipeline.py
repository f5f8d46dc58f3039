"""The only module that calls AWS: upload bundles, upsert, start, status, diff, schedules.

Every client honours AWS_PROFILE, the spec's region and AWS_ENDPOINT_URL (a moto server in tests).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from pipelines.compile import staging
from pipelines.compile.plan import Plan, check_uploads
from pipelines.compile.snapshot import data_snapshot
from pipelines.spec.errors import SpecError
from pipelines.spec.experiment import PLACEHOLDER_ACCOUNT, PLACEHOLDER_BUCKET
from pipelines.spec.parameters import refuse_bad_values
from pipelines.store.s3 import S3Store

SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


class AwsError(Exception):
    """An AWS-side problem with a message fit for the user (printed without a traceback, exit 1)."""


@dataclass
class Clients:
    region: str

    def __post_init__(self):
        import boto3

        self.session = boto3.Session(region_name=self.region)

    def __getattr__(self, service: str):
        if service.startswith("_") or service in ("session", "region"):
            raise AttributeError(service)
        client = self.session.client(service.replace("_", "-"))
        setattr(self, service, client)
        return client


def error_code(exc) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def check_placeholders(plan: Plan) -> None:
    aws, problems = plan.spec.aws, []
    for field, value in (("role", aws.role), ("image_uri", aws.image_uri)):
        if PLACEHOLDER_ACCOUNT in value:
            problems.append(plan.problem(("aws", field), f"{value} is the local placeholder",
                                         "set your account's value in experiment.yaml before deploying"))
    if aws.bucket == PLACEHOLDER_BUCKET:  # a global name: whoever owns it would receive the uploads
        problems.append(plan.problem(("aws", "bucket"), f"{aws.bucket} is the local placeholder bucket",
                                     "set a bucket your account owns in experiment.yaml before deploying"))
    for i, nb in enumerate(plan.spec.notebooks):
        if nb.image_uri is None and aws.region != "us-east-1":
            problems.append(plan.problem(("notebooks", i, "image_uri"), f"the notebook-job image of {aws.region} is "
                                         "not known here", "set the SageMaker Distribution image URI that Studio's "
                                         "notebook jobs use in your region"))
    if problems:
        raise SpecError(problems)


def check_role(clients: Clients, role_arn: str) -> None:
    """The execution role exists and SageMaker may assume it (the check the compiler skips)."""
    from botocore.exceptions import ClientError

    name = role_arn.rsplit("/", 1)[-1]
    try:
        role = clients.iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        raise AwsError(f"execution role {role_arn}: {exc.response['Error']['Message']} "
                       "(create it, e.g. from `make iam-policy`, or fix aws.role)") from None
    document = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):
        document = json.loads(document)
    principals = json.dumps(document)
    if SAGEMAKER_PRINCIPAL not in principals:
        raise AwsError(f"execution role {role_arn} does not trust {SAGEMAKER_PRINCIPAL}; add it to the role's trust policy")


def upsert(plan: Plan, definition: str, clients: Clients) -> dict:
    """Create or update the pipeline; a second upsert with no change changes nothing."""
    from botocore.exceptions import ClientError

    check_placeholders(plan)
    check_uploads(plan)
    check_role(clients, plan.spec.aws.role)
    sent = staging.put_missing(plan, S3Store(clients.s3))
    report = {"code_uploaded": sent["code"], "assets_uploaded": sent["assets"]}
    sm, name = clients.sagemaker, plan.pipeline_name
    description = plan.spec.description or f"{name}: compiled by smpipe"
    request = {"PipelineName": name, "PipelineDefinition": definition, "PipelineDescription": description,
               "RoleArn": plan.spec.aws.role,
               "ParallelismConfiguration": {"MaxParallelExecutionSteps": plan.spec.aws.max_parallel_steps}}
    try:
        current = sm.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if error_code(exc) not in ("ResourceNotFound", "ValidationException"):
            raise
        current = None
    if current is None:
        arn = sm.create_pipeline(**request, PipelineDisplayName=name, Tags=pipeline_tags(plan))["PipelineArn"]
        report["action"] = "created"
    elif _same(current, request):
        arn, report["action"] = current["PipelineArn"], "unchanged"
    else:
        arn = sm.update_pipeline(**request)["PipelineArn"]
        report["action"] = "updated"
    if current is not None:  # UpdatePipeline takes no tags: a changed aws.tags is applied here
        report["tags_updated"] = sync_tags(sm, arn, pipeline_tags(plan))
    report["pipeline_arn"] = arn
    report["studio"] = studio_link(plan)
    return report


def sync_tags(sm, arn: str, want: list[dict]) -> int:
    """Add or change the pipeline's tags to match ``want`` (tags added by others are left alone)."""
    have = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn).get("Tags", [])}
    changed = [t for t in want if have.get(t["Key"]) != t["Value"]]
    if changed:
        sm.add_tags(ResourceArn=arn, Tags=changed)
    return len(changed)


def _same(current: dict, request: dict) -> bool:
    return (canonical(current.get("PipelineDefinition", "")) == canonical(request["PipelineDefinition"])
            and current.get("PipelineDescription") == request["PipelineDescription"]
            and current.get("RoleArn") == request["RoleArn"]
            and (current.get("ParallelismConfiguration") or {}) == request["ParallelismConfiguration"])


def canonical(definition: str) -> str:
    try:
        return json.dumps(json.loads(definition), indent=2, sort_keys=True)
    except json.JSONDecodeError:
        return definition


def pipeline_tags(plan: Plan) -> list[dict]:
    tags = {"smpipe:experiment": plan.spec.name, "smpipe:code-sha256": plan.code_sha256[:16], **plan.spec.aws.tags}
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def studio_link(plan: Plan) -> str:
    region = plan.spec.aws.region
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/pipelines/{plan.pipeline_name}"


def start(plan: Plan, definition: str, parameters: dict[str, str], clients: Clients) -> str:
    """Start an execution; over an s3:// DataSource with its listing digest (compile/snapshot.py)."""
    refuse_bad_values(plan.parameters, parameters, plan.spec.aws.kms_key)
    parameters, _ = data_snapshot(plan, parameters, S3Store(clients.s3).listing)
    response = clients.sagemaker.start_pipeline_execution(
        PipelineName=plan.pipeline_name,
        PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in sorted(parameters.items())])
    return response["PipelineExecutionArn"]


def status(plan: Plan, clients: Clients, limit: int = 5) -> list[dict]:
    """The latest executions with their step statuses and failure reasons."""
    from botocore.exceptions import ClientError

    sm = clients.sagemaker
    summaries = sm.list_pipeline_executions(PipelineName=plan.pipeline_name, SortBy="CreationTime",
                                            SortOrder="Descending", MaxResults=limit)["PipelineExecutionSummaries"]
    out = []
    for summary in summaries:
        arn = summary["PipelineExecutionArn"]
        described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        item = {"arn": arn, "status": described["PipelineExecutionStatus"],
                "started": str(described.get("CreationTime", "")), "failure": described.get("FailureReason", "")}
        try:
            steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
            item["steps"] = [{"name": s["StepName"], "status": s["StepStatus"], "failure": s.get("FailureReason", "")}
                             for s in steps]
        except ClientError as exc:
            if error_code(exc) in DENIED:
                raise AwsError(f"not allowed to list the steps of {arn} ({error_code(exc)}): the caller needs "
                               "sagemaker:ListPipelineExecutionSteps") from None
            # moto and some endpoints do not implement it
            item["steps_unavailable"] = exc.response["Error"].get("Message", error_code(exc)) or error_code(exc)
        out.append(item)
    return out


def diff(plan: Plan, definition: str, clients: Clients) -> str:
    from botocore.exceptions import ClientError

    try:
        deployed = clients.sagemaker.describe_pipeline(PipelineName=plan.pipeline_name)["PipelineDefinition"]
    except ClientError as exc:
        raise AwsError(f"pipeline {plan.pipeline_name} is not deployed ({error_code(exc)}); run make pipeline-upsert") from None
    lines = difflib.unified_diff(canonical(deployed).splitlines(), canonical(definition).splitlines(),
                                 "deployed", "local", lineterm="")
    return "\n".join(lines)
