"""What an execution can cost, before it runs: per step, instance type × count × hours × price.

Worst case: every job runs to its max runtime (every model, every trial of a tuning job). Expected case:
training hours from the documents, epochs and the throughput `make bench` measured for the GPU family,
where known (else "unknown", never a guess). Spot jobs are priced at (1 - spot_discount) of on-demand.
Prices: pipelines/compile/data/prices.json (dated; `make prices` refreshes it). Pure: reads local files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipelines.compile.plan import Plan
from pipelines.spec.cron import MONTHS, WEEKDAYS
from pipelines.spec.errors import Problem, SpecError
from pipelines.spec.instance_types import family

DATA = Path(__file__).with_name("data")
STARTUP_H = 0.1  # instance start, image pull, data download: about six minutes a job


@cache
def prices() -> dict:
    return json.loads((DATA / "prices.json").read_text(encoding="utf-8"))


@cache
def throughput() -> dict:
    return json.loads((DATA / "throughput.json").read_text(encoding="utf-8"))


@dataclass
class Line:
    step: str
    instance_type: str
    count: int
    hours: float  # worst case, per instance, summed over the step's jobs
    expected_hours: float | None
    price: float | None  # per instance-hour, after the spot discount
    spot: bool = False

    @property
    def worst_usd(self) -> float | None:
        return None if self.price is None else self.price * self.count * self.hours

    @property
    def expected_usd(self) -> float | None:
        return None if self.price is None or self.expected_hours is None else self.price * self.count * self.expected_hours


def price(plan: Plan, instance_type: str, spot: bool) -> float | None:
    table = prices()["regions"].get(plan.spec.aws.region, {})
    base = table.get(instance_type)
    return None if base is None else base * ((1 - plan.spec.budget.spot_discount) if spot else 1)


def _training_expected(plan: Plan, instance_type: str, count: int, epochs: int | None = None) -> float | None:
    docs, rates = plan.spec.budget.documents, throughput()["samples_per_second_per_gpu"].get(family(instance_type))
    if not docs or not rates:
        return None
    rate = rates["bert-base"]["value"]  # the one size measured; models are priced as BERT-base-sized
    gpus = throughput()["gpus_per_instance"].get(instance_type, 1) * count
    epochs = epochs or plan.spec.train.hyperparameters.epochs
    return STARTUP_H + docs * plan.spec.data.splits.train * epochs / (rate * effective_gpus(gpus)) / 3600


def effective_gpus(gpus: int) -> float:
    """GPUs' worth of throughput: one GPU is one; more are discounted by the measured scaling efficiency
    (not linear: two GPUs measured well under twice one)."""
    return 1.0 if gpus <= 1 else gpus * throughput()["scaling"]["value"]


def lines(plan: Plan, values: dict | None = None) -> list[Line]:
    """The cost lines of one execution; ``values`` are pipeline-parameter values that replace defaults."""
    values = {**{n: p.default for n, p in plan.parameters.items()}, **(values or {})}
    return [_line(plan, node, values) for node in plan.graph.nodes if node.billed]


def _line(plan: Plan, node, values: dict) -> Line:
    """One job step: its instances for its max runtime (each of a tuning job's trials), expected hours where
    the throughput of its instance family is known (training only)."""
    instance = values[node.instance_parameter] if node.instance_parameter else node.instance_type
    count = int(values[node.count_parameter]) if node.count_parameter else node.count
    expected = _training_expected(plan, instance, count) if node.kind in ("train", "tune") else None
    return Line(node.name, instance, count, node.jobs * node.max_runtime_s / 3600,
                None if expected is None else node.jobs * expected, price(plan, instance, node.spot), node.spot)


def total(items: list[Line], attribute: str) -> float | None:
    values = [getattr(line, attribute) for line in items]
    return None if any(v is None for v in values) else sum(values)


def executions_per_month(cron: str | None, rate: str | None) -> float:
    """About how often a schedule fires in 30 days (cron fields counted, not simulated)."""
    if rate:
        number, unit = rate.split()
        per_day = {"minute": 1440, "hour": 24, "day": 1}[unit.rstrip("s")]
        return 30 * per_day / int(number)
    minutes, hours_, dom, month, dow, _ = cron.split()
    days = 30 if dom == "*" and dow in ("?", "*") else (_count(dom, 1, 31) if dow == "?" else _count(dow, 1, 7) * 30 / 7)
    if "#" in dow or "L" in dow or "L" in dom or "W" in dom:
        days = 1 if "#" in dow or dom in ("L", "LW") or "W" in dom else 30 / 7
    return _count(minutes, 0, 59) * _count(hours_, 0, 23) * days * _count(month, 1, 12) / 12


def _count(field: str, low: int, high: int) -> int:
    for name, number in {**MONTHS, **WEEKDAYS}.items():
        field = field.upper().replace(name, str(number))
    total_ = 0
    for part in field.split(","):
        base, _, step = part.partition("/")
        if base == "*" or (step and "-" not in base):
            start = low if base == "*" else int(base) if base.isdigit() else low
            total_ += len(range(start, high + 1, int(step or 1)))
        elif "-" in base:
            a, b = base.split("-")
            total_ += len(range(int(a), int(b) + 1, int(step or 1))) if a.isdigit() and b.isdigit() else 1
        else:
            total_ += 1
    return max(total_, 1)


def refuse_over_budget(plan: Plan, values: dict | None = None, where: str = "") -> None:
    """Exit 2 (SpecError) when the worst case of an execution exceeds budget.max_usd_per_execution."""
    cap = plan.spec.budget.max_usd_per_execution
    if cap is None:
        return
    items = lines(plan, values)
    missing = sorted({line.instance_type for line in items if line.price is None})
    worst = total(items, "worst_usd")
    label = where or plan.spec.name
    if missing:
        raise SpecError([Problem(label, 1, 1, "budget.max_usd_per_execution", f"cannot check the budget: no price for "
                                 f"{', '.join(missing)} in {plan.spec.aws.region}", "run `make prices` or remove the cap")])
    if worst > cap:
        biggest = max(items, key=lambda line: line.worst_usd)
        raise SpecError([Problem(label, 1, 1, "budget.max_usd_per_execution",
                                 f"the worst case of one execution is ${worst:,.2f}, over the cap of ${cap:,.2f} "
                                 f"(largest: {biggest.step}, {biggest.count} × {biggest.instance_type} × "
                                 f"{biggest.hours:g} h = ${biggest.worst_usd:,.2f})",
                                 "lower resources.*.max_runtime_s or tune.max_jobs, choose smaller instances, or "
                                 "raise the cap")])


def _most_epochs(plan: Plan) -> tuple[int, tuple]:
    """The most epochs one training job can run, and the field that asks for it."""
    spec = plan.spec
    found = [(spec.train.hyperparameters.epochs, ("train", "hyperparameters", "epochs"))]
    found += [(m.hyperparameters["epochs"], ("models", i, "hyperparameters", "epochs"))
              for i, m in enumerate(spec.models) if isinstance(m.hyperparameters.get("epochs"), int)]
    if spec.tuning and spec.tune and "epochs" in spec.tune.ranges:
        from pipelines.spec import ranges

        try:
            parsed = ranges.parse("epochs", spec.tune.ranges["epochs"])
        except ValueError:
            parsed = None  # the spec's rules report it
        if parsed is not None:
            top = parsed.max if parsed.kind != "categorical" else max(float(v) for v in parsed.values)
            found.append((int(top), ("tune", "ranges", "epochs")))
    return max(found, key=lambda item: item[0])


def refuse_epochs_over_runtime(plan: Plan) -> None:
    """A training job (or tuning trial) expected, at the measured throughput, to outlast its max_runtime_s is
    stopped before its last epoch: refused where the corpus size is known (budget.documents)."""
    training = plan.spec.resources.training
    epochs, loc = _most_epochs(plan)
    hours = _training_expected(plan, training.instance_type, training.instance_count, epochs)
    if hours is not None and hours * 3600 > training.max_runtime_s:
        raise SpecError([plan.problem(loc, f"{epochs} epochs of {plan.spec.budget.documents:,} documents on "
                                      f"{training.instance_count} × {training.instance_type} take about {hours:.1f} h "
                                      f"at the measured throughput, over resources.training.max_runtime_s "
                                      f"({training.max_runtime_s:,} s): SageMaker would stop the job first",
                                      "fewer epochs, more or bigger instances, or a longer max_runtime_s")])


def refuse_schedules_over_budget(plan: Plan) -> None:
    """A schedule's parameter values (bigger instances, more of them) may lift its executions over the cap."""
    cap = plan.spec.budget.max_usd_per_execution
    problems = []
    for i, schedule in enumerate(plan.spec.schedules):
        if cap is None or not schedule.parameters:
            continue
        worst = total(lines(plan, {k: str(v) for k, v in schedule.parameters.items()}), "worst_usd")
        if worst is not None and worst > cap:
            problems.append(plan.problem(("schedules", i, "parameters"), f"with these values one execution of "
                                         f"{schedule.name} costs up to ${worst:,.2f}, over budget.max_usd_per_execution "
                                         f"${cap:,.2f}", "choose smaller instances or fewer of them, or raise the cap"))
    if problems:
        raise SpecError(problems)


def monthly(plan: Plan, per_execution: float | None) -> list[tuple[str, float, float | None]]:
    """(schedule name, executions per month, USD per month)."""
    out = []
    for schedule in plan.spec.schedules:
        n = executions_per_month(schedule.cron, schedule.rate)
        out.append((schedule.name, n, None if per_execution is None else n * per_execution))
    return out
