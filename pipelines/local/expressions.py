"""Evaluate pipeline-definition expressions: Get, Std:Join, Std:JsonGet, conditions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

TOKEN = re.compile(r"\.?([\w-]+)|\['([^']*)'\]|\[(\d+)\]")


class ExpressionError(Exception):
    pass


@dataclass
class Scope:
    parameters: dict
    execution: dict  # PipelineExecutionId, PipelineName, ...
    steps: dict = field(default_factory=dict)  # step name → properties (describe-like dict)
    read_property_file: Callable[[str, str], dict] | None = None  # (step, file name) → parsed JSON


def tokens(path: str) -> list:
    out, pos = [], 0
    while pos < len(path):
        match = TOKEN.match(path, pos)
        if not match:
            raise ExpressionError(f"cannot parse property path {path!r} at {path[pos:]!r}")
        name, key, index = match.groups()
        out.append(int(index) if index is not None else (key if key is not None else name))
        pos = match.end()
    return out


def navigate(value, parts: list, path: str):
    for part in parts:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                raise ExpressionError(f"{path}: index {part} out of range")
            value = value[part]
        elif isinstance(value, list):  # Outputs['name']: pick the element named so
            match = [v for v in value if isinstance(v, dict) and part in {x for k, x in v.items() if k.endswith("Name")}]
            if not match:
                raise ExpressionError(f"{path}: no element named {part!r}")
            value = match[0]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise ExpressionError(f"{path}: {part!r} not found")
    return value


def get(path: str, scope: Scope):
    parts = tokens(path)
    head = parts[0]
    if head == "Parameters":
        if parts[1] not in scope.parameters:
            raise ExpressionError(f"unknown parameter {parts[1]!r}")
        return scope.parameters[parts[1]]
    if head == "Execution":
        return scope.execution[parts[1]]
    if head == "Steps":
        step = parts[1]
        if step not in scope.steps:
            raise ExpressionError(f"{path}: step {step!r} has not run")
        if parts[2:3] == ["PropertyFiles"]:
            return {"__property_file__": (step, parts[3])}
        return navigate(scope.steps[step], parts[2:], path)
    raise ExpressionError(f"unsupported reference {path!r}")


def evaluate(value, scope: Scope):
    """Resolve every expression inside ``value`` (dicts and lists are walked)."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Get":
                return get(arg, scope)
            if key == "Std:Join":
                return arg["On"].join(_text(evaluate(v, scope)) for v in arg["Values"])
            if key == "Std:JsonGet":
                return json_get(arg, scope)
        return {k: evaluate(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, scope) for v in value]
    return value


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def json_get(arg: dict, scope: Scope):
    ref = evaluate(arg["PropertyFile"], scope)
    if not isinstance(ref, dict) or "__property_file__" not in ref:
        raise ExpressionError("Std:JsonGet needs a PropertyFile reference")
    step, name = ref["__property_file__"]
    document = scope.read_property_file(step, name)
    return navigate(document, tokens(arg["Path"]), f"{name}:{arg['Path']}")


COMPARE = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def condition(cond: dict, scope: Scope) -> bool:
    kind = cond["Type"]
    if kind in COMPARE:
        return bool(COMPARE[kind](evaluate(cond["LeftValue"], scope), evaluate(cond["RightValue"], scope)))
    if kind == "In":
        return evaluate(cond["QueryValue"], scope) in [evaluate(v, scope) for v in cond["Values"]]
    if kind == "Not":
        return not condition(cond["Expression"], scope)
    if kind == "Or":
        return any(condition(c, scope) for c in cond["Conditions"])
    raise ExpressionError(f"unsupported condition type {kind!r}")


def references(value) -> set[str]:
    """Names of the steps an expression tree reads from."""
    found: set[str] = set()
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str) and value["Get"].startswith("Steps."):
            found.add(tokens(value["Get"])[1])
        for v in value.values():
            found |= references(v)
    elif isinstance(value, list):
        for v in value:
            found |= references(v)
    return found


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
