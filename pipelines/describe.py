"""A human-readable plan: the DAG, names, URIs and parameters (what `make plan` prints)."""

from __future__ import annotations

from pipelines.plan import Plan


def describe(plan: Plan) -> str:
    spec = plan.spec
    lines = [f"pipeline   {plan.pipeline_name}", f"code       {plan.code_uri}", f"data       {plan.base_uri}/data/",
             f"runs       {plan.base_uri}/runs/<execution id>/", "", "DAG"]
    chain = (["Reconcile"] if spec.steps.reconcile else []) + ["Prepare"]
    lines.append("  " + " -> ".join(chain) + " -> {" + ", ".join(m.step_name for m in plan.models) + "}")
    if spec.steps.evaluate:
        tail = "Register" if spec.steps.register else "(nothing)"
        lines.append(f"  -> Evaluate -> Gate({spec.gate.metric} >= GateThreshold) -> {tail} | MetricBelowThreshold")
    lines += ["", "parameters (Studio can change them per execution)"]
    lines += [f"  {name:24} {kind:8} {default}" for name, (kind, default) in plan.parameters.items()]
    if plan.uploads:
        lines += ["", "local folders synced before a run"]
        lines += [f"  {path} -> {uri}" for uri, path in sorted(plan.uploads.items())]
    return "\n".join(lines)
