"""A definition's steps as a graph: flattened condition branches, dependencies, parameter values."""

from __future__ import annotations

from pipelines.local import expressions as ex


def flatten(steps: list, parent: str | None = None) -> dict[str, tuple[dict, str | None]]:
    """name → (step, the condition step that owns it, if any)."""
    out = {}
    for step in steps:
        out[step["Name"]] = (step, parent)
        nested = step.get("Arguments", {}).get("IfSteps", []) + step.get("Arguments", {}).get("ElseSteps", [])
        out.update(flatten(nested, step["Name"]))  # a condition's branches
    return out


def dependencies(steps: dict) -> dict[str, set[str]]:
    deps = {}
    for name, (step, owner) in steps.items():
        args = {k: v for k, v in step.get("Arguments", {}).items() if k not in ("IfSteps", "ElseSteps")}
        found = ex.references(args) | set(step.get("DependsOn", []))
        found |= {s for s in ex.references(step.get("Arguments", {}).get("Conditions", []))}
        if owner:
            found.add(owner)
        deps[name] = {d for d in found if d in steps and d != name}
    return deps


def descendants(deps: dict[str, set[str]], root: str) -> set[str]:
    out, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        for name, parents in deps.items():
            if current in parents and name not in out:
                out.add(name)
                frontier.append(name)
    return out


def ancestors(deps: dict[str, set[str]], root: str) -> set[str]:
    """``root`` and every step it needs."""
    out, frontier = {root}, [root]
    while frontier:
        for parent in deps[frontier.pop()] - out:
            out.add(parent)
            frontier.append(parent)
    return out


def parameter_values(definition: dict, overrides: dict) -> dict:
    casts = {"String": str, "Integer": int, "Float": float, "Boolean": lambda v: str(v).lower() == "true"}
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ex.ExpressionError(f"unknown parameter(s) {sorted(unknown)}; declared: {sorted(declared)}")
    values = {}
    for name, p in declared.items():
        raw = overrides.get(name, p.get("DefaultValue"))
        if raw is None:
            raise ex.ExpressionError(f"parameter {name} has no default; pass --param {name}=VALUE")
        try:
            values[name] = casts[p["Type"]](raw)
        except ValueError:
            raise ex.ExpressionError(f"parameter {name}: {raw!r} is not a {p['Type']}") from None
        if p.get("EnumValues") and values[name] not in p["EnumValues"]:  # SageMaker refuses it at start
            raise ex.ExpressionError(f"parameter {name}: {raw!r} is not one of its EnumValues")
    return values
