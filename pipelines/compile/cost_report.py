"""`make cost`: the cost lines of one execution and of each schedule's month, as a table."""

from __future__ import annotations

import io

from pipelines.compile import cost
from pipelines.compile.plan import Plan


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def render(plan: Plan, values: dict | None = None) -> str:
    from rich.console import Console
    from rich.table import Table

    items = cost.lines(plan, values)
    table = Table(title=f"{plan.spec.name}: one execution ({plan.spec.aws.region}, prices of "
                        f"{cost.prices()['date']})")
    for column in ("step", "instance", "count", "worst h", "$/h", "worst case", "expected h", "expected"):
        table.add_column(column, justify="left" if column in ("step", "instance") else "right")
    for line in items:
        rate = "no price" if line.price is None else f"{line.price:,.3f}" + (" spot" if line.spot else "")
        expected = "unknown" if line.expected_hours is None else f"{line.expected_hours:.2f}"
        table.add_row(line.step, line.instance_type, str(line.count), f"{line.hours:g}", rate,
                      _usd(line.worst_usd), expected, _usd(line.expected_usd))
    worst, expected = cost.total(items, "worst_usd"), cost.total(items, "expected_usd")
    table.add_row("total", "", "", "", "", _usd(worst), "", _usd(expected))
    console = Console(record=True, width=130, highlight=False, file=io.StringIO())
    console.print(table)
    for name, n, usd in cost.monthly(plan, worst):
        console.print(f"schedule {name}: about {n:,.1f} executions a month → worst case {_usd(usd)} a month")
    for note in notes(plan, items):
        console.print(note)
    return console.export_text()


def notes(plan: Plan, items: list) -> list[str]:
    out = ["worst case: every job runs to its max runtime (resources.*.max_runtime_s), every model, every "
           "trial (tune.max_jobs); Register, Gate and the model step cost nothing"]
    if any(line.spot for line in items):
        out.append(f"spot: priced at {1 - plan.spec.budget.spot_discount:.0%} of on-demand (budget.spot_discount "
                   f"{plan.spec.budget.spot_discount:g}; the real saving varies by type and hour)")
    missing = sorted({line.instance_type for line in items if line.price is None})
    if missing:
        out.append(f"warning: no price for {', '.join(missing)} in {plan.spec.aws.region}: the totals are unknown, "
                   "not zero (`make prices` refreshes the table from the AWS Pricing API)")
    if any(line.expected_hours is None for line in items):
        out.append("expected case: known only for training on a GPU family that `make bench` measured (p5) with "
                   "budget.documents set; processing and evaluation time are not predicted")
    if plan.spec.budget.max_usd_per_execution:
        out.append(f"budget: at most ${plan.spec.budget.max_usd_per_execution:,.2f} per execution "
                   "(validate, upsert and start refuse a worst case above it)")
    return out
