"""Commands of the AWS layer: upsert, start, status, diff, schedules, the job image, IAM policies."""

from __future__ import annotations

import json

from pipelines.commands.common import command, load_plan, spec_path


def _deploy(args):
    from pipelines.aws.pipeline import Clients
    from pipelines.compile.definition import definition

    plan = load_plan(args)
    return plan, definition(plan), Clients(plan.spec.aws.region)


def cmd_upsert(args) -> int:
    from pipelines.aws import pipeline, schedules
    from pipelines.compile.cost import refuse_epochs_over_runtime, refuse_over_budget, refuse_schedules_over_budget

    plan, text, clients = _deploy(args)
    refuse_over_budget(plan, where=str(spec_path(args.spec)))
    refuse_schedules_over_budget(plan)
    refuse_epochs_over_runtime(plan)
    report = pipeline.upsert(plan, text, clients)
    print(f"pipeline {plan.pipeline_name}: {report['action']} ({report['pipeline_arn']})")
    print(f"staged: {report['code_uploaded']} code bundle(s) and {report['assets_uploaded']} file(s) uploaded, "
          "the rest already there (content-addressed keys)")
    if report.get("tags_updated"):
        print(f"tags: {report['tags_updated']} added or changed (aws.tags)")
    for line in schedules.reconcile(plan, clients, report["pipeline_arn"]) if plan.spec.schedules else []:
        print(f"schedule: {line}")
    print(f"studio: {report['studio']}")
    return 0


def cmd_start(args) -> int:
    from pipelines.aws import pipeline
    from pipelines.compile.cost import refuse_over_budget
    from pipelines.spec.parameters import parse_assignments, refuse_bad_values

    plan, text, clients = _deploy(args)
    values = parse_assignments(args.param)
    refuse_bad_values(plan.parameters, values, plan.spec.aws.kms_key)
    refuse_over_budget(plan, values, where=str(spec_path(args.spec)))  # with the instance types and counts given
    print(pipeline.start(plan, text, values, clients))
    return 0


def cmd_status(args) -> int:
    from pipelines.aws import pipeline

    plan, _, clients = _deploy(args)
    for item in pipeline.status(plan, clients):
        print(f"{item['arn']}  {item['status']}  {item['started']}  {item['failure']}".rstrip())
        for step in item.get("steps", []):
            print(f"    {step['name']:<28} {step['status']:<12} {step['failure']}".rstrip())
        if "steps_unavailable" in item:
            print(f"    (step statuses unavailable from this endpoint: {item['steps_unavailable']})")
    return 0


def cmd_diff(args) -> int:
    from pipelines.aws import pipeline

    plan, text, clients = _deploy(args)
    print(pipeline.diff(plan, text, clients) or "no difference: the deployed definition is the local one")
    return 0


def cmd_schedule(args) -> int:
    from pipelines.aws import schedules

    plan, _, clients = _deploy(args)
    arn = clients.sagemaker.describe_pipeline(PipelineName=plan.pipeline_name)["PipelineArn"]
    for line in schedules.reconcile(plan, clients, arn, dry_run=args.dry_run):
        print(line)
    return 0


def cmd_build_push(args) -> int:
    from pipelines.aws.images import build_push
    from pipelines.aws.pipeline import Clients, check_placeholders

    plan = load_plan(args)
    check_placeholders(plan)
    print(f"pushed {build_push(plan, spec_path(args.spec).parent, Clients(plan.spec.aws.region))}")
    return 0


def cmd_iam_policy(args) -> int:
    from pipelines.aws.iam import policies

    print(json.dumps(policies(load_plan(args)), indent=2, sort_keys=True))
    return 0


def cmd_deploy(args) -> int:
    from pipelines.aws.deploy import deploy
    from pipelines.aws.pipeline import Clients, check_placeholders

    plan = load_plan(args)
    check_placeholders(plan)
    for line in deploy(plan, Clients(plan.spec.aws.region), args.version):
        print(line)
    return 0


def cmd_undeploy(args) -> int:
    from pipelines.aws.deploy import undeploy
    from pipelines.aws.pipeline import Clients

    plan = load_plan(args)
    for line in undeploy(plan, Clients(plan.spec.aws.region)):
        print(line)
    return 0


def cmd_prices(args) -> int:
    import boto3

    from pipelines.aws.prices import refresh
    from pipelines.compile.cost import DATA, lines

    plan = load_plan(args)
    wanted = [line.instance_type for line in lines(plan) if line.instance_type.startswith("ml.")]
    written, missing = refresh(DATA / "prices.json", plan.spec.aws.region, wanted,
                               boto3.client("pricing", region_name="us-east-1"))
    print(f"{written} prices written for {plan.spec.aws.region} to {DATA / 'prices.json'}"
          + (f"; no price found for {', '.join(missing)}" if missing else ""))
    return 0


def register(sub) -> None:
    command(sub, "upsert", "upload the code bundle if new, create or update the pipeline, reconcile schedules",
            cmd_upsert)
    start = command(sub, "start", "start an execution on SageMaker", cmd_start)
    start.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    command(sub, "status", "latest executions, step statuses and failure reasons", cmd_status)
    command(sub, "diff", "deployed definition vs the local one", cmd_diff)
    schedule = command(sub, "schedule", "reconcile EventBridge Scheduler schedules with the spec", cmd_schedule)
    schedule.add_argument("--dry-run", action="store_true", help="report drift, change nothing")
    command(sub, "build-push", "docker build the job image and push it to ECR", cmd_build_push)
    command(sub, "iam-policy", "print least-privilege policies for the execution and scheduler roles", cmd_iam_policy)
    deploy = command(sub, "deploy", "create or update an endpoint from the latest Approved model package", cmd_deploy)
    deploy.add_argument("--version", type=int, help="model package version (default: the latest Approved)")
    command(sub, "undeploy", "delete the endpoint, endpoint configs and models that deploy made", cmd_undeploy)
    command(sub, "prices", "refresh the price table from the AWS Pricing API (needs credentials)", cmd_prices)
