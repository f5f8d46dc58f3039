"""Evaluate IAM policies the way IAM does, for tests: moto's IAM evaluator matches actions and resources
(wildcards, Allow, explicit Deny); the condition operators our policies use are evaluated here, because
moto skips every operator but StringEquals (a key missing from the request fails the condition, as in IAM)."""

from __future__ import annotations

import fnmatch
import json

from moto.iam.access_control import IAMPolicy, PermissionResult


def _holds(operator: str, expected, actual) -> bool:
    if actual is None:
        return False
    wanted = expected if isinstance(expected, list) else [expected]
    if operator in ("StringEquals", "ArnEquals"):
        return actual in wanted
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, pattern) for pattern in wanted)
    if operator == "Bool":
        return str(actual).lower() in [str(w).lower() for w in wanted]
    raise AssertionError(f"condition operator {operator} not modelled in tests/iam_eval.py")


def _conditions_hold(condition: dict | None, context: dict) -> bool:
    return all(_holds(op, expected, context.get(key))
               for op, pairs in (condition or {}).items() for key, expected in pairs.items())


def allowed(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
    decision = False
    for statement in policy["Statement"]:
        bare = {k: v for k, v in statement.items() if k != "Condition"}
        result = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": [bare]})).is_action_permitted(action, resource)
        if result == PermissionResult.NEUTRAL or not _conditions_hold(statement.get("Condition"), context or {}):
            continue
        if result == PermissionResult.DENIED:
            return False
        decision = True
    return decision
