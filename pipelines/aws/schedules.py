"""EventBridge Scheduler schedules reconciled with the spec: create, update, delete, report drift.

boto3 directly: the SDK's PipelineSchedule cannot pass per-schedule parameter values or a timezone.
Schedules of an experiment are named ``<pipeline name>-<schedule name>`` in a group per experiment.
"""

from __future__ import annotations

import json

from pipelines.aws.pipeline import Clients, error_code
from pipelines.compile.plan import Plan
from pipelines.compile.snapshot import needs_listing

GROUP = "default"


# EventBridge Scheduler's universal target for StartPipelineExecution: its Input is the request, in which the
# scheduler replaces context attributes such as <aws.scheduler.scheduled-time> at every invocation.
START_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


def parameters_of(plan: Plan, schedule) -> dict[str, str]:
    """The schedule's values; over an s3:// DataSource also DataSnapshot, the invocation's time: nothing lists
    the prefix before a scheduled start, so each scheduled execution reads its data again (never a cached
    snapshot of last week's objects)."""
    values = {k: str(v) for k, v in schedule.parameters.items()}
    source = values.get("DataSource", str(plan.parameters["DataSource"].default))
    if needs_listing(plan, source) and "DataSnapshot" not in values:
        values["DataSnapshot"] = SCHEDULED_TIME
    return values


def desired(plan: Plan, pipeline_arn: str) -> dict[str, dict]:
    out = {}
    for schedule in plan.spec.schedules:
        expression = f"cron({schedule.cron})" if schedule.cron else f"rate({schedule.rate})"
        request = {"PipelineName": plan.pipeline_name, "PipelineParameters": [
            {"Name": k, "Value": v} for k, v in sorted(parameters_of(plan, schedule).items())]}
        target = {"Arn": START_TARGET, "RoleArn": plan.spec.aws.scheduler_role,
                  "RetryPolicy": {"MaximumRetryAttempts": 0}, "Input": json.dumps(request, sort_keys=True)}
        out[f"{plan.pipeline_name}-{schedule.name}"[:64]] = {
            "ScheduleExpression": expression, "ScheduleExpressionTimezone": schedule.timezone,
            "State": "ENABLED" if schedule.enabled else "DISABLED", "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": target, "Description": f"smpipe schedule {schedule.name} of {plan.pipeline_name}"}
    return out


def _existing(clients: Clients, prefix: str) -> dict[str, dict]:
    pages = clients.scheduler.get_paginator("list_schedules").paginate(GroupName=GROUP, NamePrefix=prefix)
    names = [s["Name"] for page in pages for s in page["Schedules"]]
    return {n: clients.scheduler.get_schedule(Name=n, GroupName=GROUP) for n in names}


def _drift(want: dict, have: dict) -> list[str]:
    fields = ("ScheduleExpression", "ScheduleExpressionTimezone", "State")
    changes = [f"{f}: {have.get(f)!r} -> {want[f]!r}" for f in fields if have.get(f) != want[f]]
    have_target, want_target = have.get("Target", {}), want["Target"]
    if have_target.get("Arn") != want_target["Arn"] or _request(have_target) != _request(want_target):
        changes.append(f"target: {_request(have_target)} -> {_request(want_target)}")
    if have_target.get("RoleArn") != want_target["RoleArn"]:
        changes.append("scheduler role changed")
    return changes


def _request(target: dict) -> dict:
    try:
        return json.loads(target.get("Input") or "{}")
    except ValueError:
        return {"unreadable": target.get("Input")}


def reconcile(plan: Plan, clients: Clients, pipeline_arn: str, dry_run: bool = False) -> list[str]:
    """Make the deployed schedules match the spec; return one line per action (or drift, when dry)."""
    from botocore.exceptions import ClientError

    want = desired(plan, pipeline_arn)
    try:
        have = _existing(clients, plan.pipeline_name + "-")
    except ClientError as exc:
        return [f"schedules unavailable: {error_code(exc)}"]
    actions = []
    for name, spec in sorted(want.items()):
        if name not in have:
            actions.append(f"create {name}")
            if not dry_run:
                clients.scheduler.create_schedule(Name=name, GroupName=GROUP, **spec)
            continue
        changes = _drift(spec, have[name])
        if changes:
            actions.append(f"update {name}: " + "; ".join(changes))
            if not dry_run:
                clients.scheduler.update_schedule(Name=name, GroupName=GROUP, **spec)
    for name in sorted(set(have) - set(want)):
        actions.append(f"delete {name} (no longer in the spec)")
        if not dry_run:
            clients.scheduler.delete_schedule(Name=name, GroupName=GROUP)
    return actions or ["schedules match the spec"]
