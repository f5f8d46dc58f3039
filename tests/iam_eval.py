"""Evaluate IAM policies the way IAM does, for tests: actions and resources are matched with IAM's two
wildcards (``*`` any run, ``?`` one character; actions case-insensitively), explicit Deny wins, and the
condition operators our policies use are evaluated (a key missing from the request fails the condition).
moto's evaluator was used before; it cannot read ``?`` (a secret's ``name-??????``) and skips most
condition operators."""

from __future__ import annotations

import fnmatch


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


def _listed(statement: dict, key: str) -> list[str]:
    value = statement.get(key, [])
    return value if isinstance(value, list) else [value]


def _matches(statement: dict, action: str, resource: str) -> bool:
    actions = any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement, "Action"))
    return actions and any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement, "Resource"))


def allowed(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
    decision = False
    for statement in policy["Statement"]:
        if not _matches(statement, action, resource) or not _conditions_hold(statement.get("Condition"), context or {}):
            continue
        if statement["Effect"] == "Deny":
            return False
        decision = True
    return decision
