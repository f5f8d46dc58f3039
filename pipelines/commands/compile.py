"""Commands of the compile layer: the definition, validation against the API model, the plan, goldens."""

from __future__ import annotations

import sys

from pipelines.commands.common import command, load_plan, spec_path


def cmd_definition(args) -> int:
    from pipelines.compile.definition import definition

    sys.stdout.write(definition(load_plan(args)))
    return 0


def cmd_validate(args) -> int:
    from pipelines.compile.api_check import check_definition
    from pipelines.compile.cost import refuse_epochs_over_runtime, refuse_over_budget, refuse_schedules_over_budget
    from pipelines.compile.definition import definition
    from pipelines.compile.window_notes import notes
    from pipelines.spec.errors import SpecError

    plan = load_plan(args)
    problems = check_definition(definition(plan), str(spec_path(args.spec)))
    if problems:
        raise SpecError(problems)
    for line in notes(plan.spec):
        print(line, file=sys.stderr)
    refuse_over_budget(plan, where=str(spec_path(args.spec)))
    refuse_schedules_over_budget(plan)
    refuse_epochs_over_runtime(plan)
    for line in _count_rows(plan, args):
        print(line)
    kinds = "tuning" if plan.spec.tuning else "training"
    print(f"{plan.spec.name}: valid ({len(plan.models)} model(s), {kinds}); every job step matches the SageMaker API.")
    return 0


def cmd_plan(args) -> int:
    from pipelines.compile.describe import describe

    plan = load_plan(args)
    print(describe(plan))
    counted = _count_rows(plan, args)
    if counted:
        print("\n" + "\n".join(counted))
    return 0


def _count_rows(plan, args) -> list[str]:
    """--count-rows (make plan and make validate pass it): the real rows, steps and time, where data is local."""
    from pathlib import Path

    if not args.count_rows:
        return []
    from pipelines.local.estimate import estimate

    return estimate(plan, Path(args.store), Path(args.runs), lambda line: print(line, file=sys.stderr, flush=True))


def cmd_golden(_args) -> int:
    from pipelines.compile.golden import regenerate

    for path in regenerate():
        print(path)
    return 0


def cmd_cost(args) -> int:
    from pipelines.compile.cost_report import render
    from pipelines.spec.parameters import parse_assignments, refuse_bad_values

    plan = load_plan(args)
    values = parse_assignments(args.param)
    refuse_bad_values(plan.parameters, values, plan.spec.aws.kms_key)
    print(render(plan, values), end="")
    return 0


def register(sub) -> None:
    command(sub, "definition", "print the canonical pipeline definition JSON", cmd_definition)
    validate = command(sub, "validate", "validate the spec, then every job step against the SageMaker API model",
                       cmd_validate)
    plan = command(sub, "plan", "print the DAG, names, URIs and parameters", cmd_plan)
    for p in (validate, plan):
        p.add_argument("--count-rows", action="store_true", help="where the data is local: run Reconcile and Prepare "
                       "here (cached) and print each model's rows, steps per epoch and time on this machine")
        p.add_argument("--store", default=".local-s3")
        p.add_argument("--runs", default=".local-runs")
    cost = command(sub, "cost", "what one execution (and each schedule's month) can cost, before it runs", cmd_cost)
    cost.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="as at start")
    command(sub, "golden", "regenerate tests/golden/<EXP>.json for every example experiment", cmd_golden, spec=False)
