"""Tuning ranges and choices, value by value: every value a range or a choice can produce passes the rule of
the hyperparameter it sets, as a fixed value would (a batch size of 0 among the choices, a learning-rate range
reaching 1, bf16 on a CPU instance), and a range never silently replaces a value written elsewhere."""

from __future__ import annotations

from pydantic import ValidationError

from pipelines.spec import ranges
from pipelines.spec.experiment import Experiment, Hyperparameters
from pipelines.spec.instance_types import is_gpu_instance

NUMERIC = {"int": int, "float": float}


def check(spec: Experiment, add) -> None:
    if spec.tune is None:
        return
    if not spec.tuning:
        add(("tune",), "a tune: section is given but steps.tune is off: its ranges would be ignored",
            "set steps: {tune: true} to tune, or remove the tune: section")
        return
    for name, raw in spec.tune.ranges.items():
        field = Hyperparameters.model_fields.get(name)
        try:
            parsed = ranges.parse(name, raw)
        except ValueError:
            continue  # rules.py reports it
        if field is None:
            continue
        for message in _problems(spec, name, field.annotation, parsed):
            add(("tune", "ranges", name), message, "every value a range or choice can produce must be valid for "
                f"train.hyperparameters.{name}")
        for i, model in enumerate(spec.models):
            if name in model.hyperparameters:
                add(("models", i, "hyperparameters", name), f"{model.name} sets {name} itself, and tune.ranges.{name} "
                    "would replace it in every trial without a word", "remove one of the two")


def _problems(spec: Experiment, name: str, annotation, parsed: ranges.ParsedRange) -> list[str]:
    kind = getattr(annotation, "__name__", "")
    if kind == "int" and parsed.kind == "continuous":
        return [f"{name} is an integer: a continuous range would give it fractions", ]
    if kind == "float" and parsed.kind == "integer":
        return [f"{name} is a decimal: an integer range gives it whole numbers only; write the ends as decimals "
                f"(e.g. {parsed.min:g}.0->{parsed.max:g}.0)"]
    values = list(parsed.values) if parsed.kind == "categorical" else [parsed.min, parsed.max]
    out = []
    for value in values:
        problem = _value_problem(name, kind, value)
        if problem:
            out.append(problem)
    if name == "precision" and any(v in ("bf16", "fp16") for v in values):
        training = spec.resources.training
        if not is_gpu_instance(training.instance_type) and training.instance_type != "local":
            out.append(f"a half-precision choice needs a GPU instance, {training.instance_type} has none")
    return out


def _value_problem(name: str, kind: str, value) -> str | None:
    typed = value
    if kind in NUMERIC:
        if isinstance(value, str) and (not value.isascii() or "_" in value):
            return f"{value!r} is not a number written in ASCII digits"
        try:
            typed = NUMERIC[kind](value)
        except (TypeError, ValueError):
            return f"{value!r} is not a{'n' if kind == 'int' else ''} {kind}"
    try:
        Hyperparameters.__pydantic_validator__.validate_assignment(Hyperparameters.model_construct(), name, typed)
    except ValidationError as exc:
        return f"{name}={value}: {exc.errors()[0]['msg']}"
    return None
