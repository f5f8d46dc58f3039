"""Check each job step's arguments against botocore's SageMaker service model, offline.

Pipeline expressions ({"Get": ...}, {"Std:Join": ...}) are replaced by placeholders of the type the
API expects, so a definition the service would refuse (a missing field, a wrong type, a string over
its length limit) is caught before any AWS call.
"""

from __future__ import annotations

import json

from pipelines.spec.errors import Problem

OPERATIONS = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "placeholder"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "placeholder"}),
    "Tuning": ("CreateHyperParameterTuningJob", {"HyperParameterTuningJobName": "placeholder"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Model": ("CreateModel", {"ModelName": "placeholder"}),
    "Transform": ("CreateTransformJob", {"TransformJobName": "placeholder"}),
}
EXPRESSIONS = ("Get", "Std:Join", "Std:JsonGet")
PLACEHOLDERS = {"string": "s3://placeholder/key", "integer": 1, "long": 1, "float": 1.0, "double": 1.0,
                "boolean": True}


def check_definition(definition: str, label: str) -> list[Problem]:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    problems = []
    for step in _all_steps(json.loads(definition)["Steps"]):
        if step["Type"] not in OPERATIONS:
            continue
        operation, extra = OPERATIONS[step["Type"]]
        shape = model.operation_model(operation).input_shape
        params = {**_substitute(step["Arguments"], shape), **extra}
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                problems.append(Problem(label, 1, 1, f"Steps.{step['Name']}", f"{operation}: {line.strip()}",
                                        "the SageMaker API would refuse this step"))
        _lengths(params, shape, step["Name"], operation, label, problems)
    return problems


def _all_steps(steps: list) -> list:
    out = []
    for step in steps:
        out.append(step)
        if step["Type"] == "Condition":
            out += _all_steps(step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []))
    return out


def _substitute(value, shape):
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPRESSIONS:
        return PLACEHOLDERS.get(shape.type_name, "placeholder")
    if shape is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _substitute(v, shape.members.get(k)) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_substitute(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _substitute(v, shape.value) for k, v in value.items()}
    return value


def _lengths(value, shape, step: str, operation: str, label: str, problems: list, path: str = "") -> None:
    """botocore does not enforce max lengths or patterns; the service does. Check the lengths."""
    if shape is None:
        return
    if shape.type_name == "structure" and isinstance(value, dict):
        for k, v in value.items():
            _lengths(v, shape.members.get(k), step, operation, label, problems, f"{path}.{k}" if path else k)
    elif shape.type_name == "list" and isinstance(value, list):
        limit = shape.metadata.get("max")
        if limit is not None and len(value) > limit:
            problems.append(Problem(label, 1, 1, f"Steps.{step}.{path}", f"{operation}: {len(value)} items, at most {limit}"))
        for i, v in enumerate(value):
            _lengths(v, shape.member, step, operation, label, problems, f"{path}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        limit = shape.metadata.get("max")
        if limit is not None and len(value) > limit:
            problems.append(Problem(label, 1, 1, f"Steps.{step}.{path}", f"{operation}: {len(value)} entries, at most {limit}"))
        for k, v in value.items():
            _lengths(v, shape.value, step, operation, label, problems, f"{path}.{k}")
    elif shape.type_name == "string" and isinstance(value, str):
        limit = shape.metadata.get("max")
        if limit is not None and len(value) > limit:
            problems.append(Problem(label, 1, 1, f"Steps.{step}.{path}",
                                    f"{operation}: {len(value)} characters, at most {limit}"))
