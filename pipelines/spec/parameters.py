"""Pipeline parameters: what Studio, `--param` and schedules may change per execution, and what they may not.

Closed sets (approval status, instance types) are declared with EnumValues so SageMaker refuses a typo at
start; every value this tool writes (defaults, `--param`, schedule overrides) is checked here first, against
the same constraints as a constant in the spec.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pydantic import ValidationError

from pipelines.spec.errors import Problem, SpecError, fail
from pipelines.spec.experiment import Experiment, Gate, Hyperparameters, Resources
from pipelines.spec.gpu_runtime import image_problem
from pipelines.spec.instance_types import api_enum, has_local_storage

APPROVAL_STATUSES = ("Approved", "PendingManualApproval", "Rejected")
INSTANCE_PARAMETERS = {"ProcessingInstanceType": "processing", "TrainInstanceType": "training",
                       "EvaluationInstanceType": "processing"}
CASTS = {"String": str, "Integer": int, "Float": float}
LOCAL_INSTANCE_TYPES = ("local", "local_gpu")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # String | Integer | Float
    default: object
    enum: tuple[str, ...] | None = None


def declare(spec: Experiment, data_source: str, transform_source: str | None = None) -> dict[str, Parameter]:
    hp, res = spec.train.hyperparameters, spec.resources
    rows = [
        ("DataSource", "String", data_source),
        # what a start over an s3:// DataSource saw there (the listing's digest; "-": nothing was listed)
        ("DataSnapshot", "String", "-"),
        ("ProcessingInstanceType", "String", res.processing.instance_type),
        ("TrainInstanceType", "String", res.training.instance_type),
        ("TrainInstanceCount", "Integer", res.training.instance_count),
        ("EvaluationInstanceType", "String", res.evaluation.instance_type),
        ("Epochs", "Integer", hp.epochs),
        ("LearningRate", "Float", hp.learning_rate),
        ("GateThreshold", "Float", spec.gate.threshold),
        ("ApprovalStatus", "String", spec.register.approval),
    ]
    if spec.transform:
        rows.append(("TransformSource", "String", transform_source or spec.transform.source))
    return {name: Parameter(name, kind, default, _enum(name, default)) for name, kind, default in rows}


def _enum(name: str, default) -> tuple[str, ...] | None:
    if name == "ApprovalStatus":
        return APPROVAL_STATUSES
    if name in INSTANCE_PARAMETERS:
        # SageMaker requires the default among the values; `local` defaults only ever run here.
        local = {default} if default in LOCAL_INSTANCE_TYPES else set()
        usable = {t for t in api_enum(INSTANCE_PARAMETERS[name]) if not image_problem(t)}  # Studio offers only these
        return tuple(sorted({*usable, *local}))
    return None


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`--param NAME=VALUE` pairs as given on the command line (values are checked by refuse_bad_values)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise fail("<command line>", f"--param {pair!r} is not NAME=VALUE", hint="e.g. --param Epochs=1")
        out[name] = value
    return out


def refuse_bad_values(declared: dict[str, Parameter], values: dict[str, object], kms_key: str | None) -> None:
    """For `--param NAME=VALUE` on the command line: every problem at once, exit status 2."""
    problems = [Problem("<command line>", 1, 1, f"--param {name}", message, "the pipeline would refuse it at start "
                        "or fail later; `make plan` lists the parameters")
                for name, value in values.items() for message in check_values(declared, {name: value}, kms_key)]
    if problems:
        raise SpecError(problems)


def check_values(declared: dict[str, Parameter], values: dict[str, object], kms_key: str | None) -> list[str]:
    """Every problem with these parameter values, as messages (the caller says where they came from)."""
    problems = []
    for name, value in values.items():
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            problems.append(f"unknown pipeline parameter {name!r}" + (f" (did you mean {close[0]!r}?)" if close else
                            f"; the pipeline has {', '.join(sorted(declared))}"))
            continue
        problems += _check_one(declared[name], value, kms_key)
    return problems


# The spec field each parameter sets: a value given at run time (a schedule's parameters, --param) passes the
# same rule as the field written in the spec.
FIELD_RULES = {"Epochs": (Hyperparameters, "epochs", "train.hyperparameters.epochs"),
               "LearningRate": (Hyperparameters, "learning_rate", "train.hyperparameters.learning_rate"),
               "GateThreshold": (Gate, "threshold", "gate.threshold"),
               "TrainInstanceCount": (Resources, "instance_count", "resources.training.instance_count")}
URI_PARAMETERS = ("DataSource", "TransformSource")


def _field_rule(name: str, typed) -> str | None:
    if name in URI_PARAMETERS and not (str(typed).startswith("s3://") and len(str(typed)) > 5):
        return (f"{name}={typed!r} is not an s3:// URI: a job reads its input from S3 (a local folder is staged "
                f"only when the spec names it)")
    if name not in FIELD_RULES:
        return None
    model, field, where = FIELD_RULES[name]
    try:
        model.__pydantic_validator__.validate_assignment(model.model_construct(), field, typed)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        return f"{name}={typed}: {message} (the rule of {where})"
    return None


def _check_one(param: Parameter, value, kms_key: str | None) -> list[str]:
    try:
        typed = CASTS[param.type](value)
    except (TypeError, ValueError):
        return [f"{param.name}={value!r} is not a{'n' if param.type == 'Integer' else ''} {param.type}"]
    rule = _field_rule(param.name, typed)
    if rule:
        return [rule]
    if param.name in INSTANCE_PARAMETERS and image_problem(str(typed)):  # before the enum: it says why
        return [f"{param.name}={typed}: {image_problem(str(typed))}"]
    if param.enum is not None and typed not in param.enum:
        close = difflib.get_close_matches(str(typed), param.enum, n=1)
        return [f"{param.name}={typed!r} is not a value SageMaker accepts here"
                + (f" (did you mean {close[0]!r}?)" if close else f"; one of {', '.join(param.enum[:6])} …")]
    if kms_key and param.name in INSTANCE_PARAMETERS and has_local_storage(typed) != has_local_storage(param.default):
        kind = "has local NVMe storage" if has_local_storage(typed) else "has no local storage"
        return [f"{param.name}={typed}: it {kind}, unlike the default {param.default} the definition was compiled "
                f"for, so its volume encryption with aws.kms_key would not hold (SageMaker refuses VolumeKmsKeyId "
                f"on local-storage instances); choose an instance of the same kind or change the spec's default"]
    return []
