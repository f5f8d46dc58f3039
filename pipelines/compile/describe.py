"""A human-readable plan: the DAG, names, URIs and parameters (what `make plan` prints)."""

from __future__ import annotations

from pipelines.compile.plan import Plan
from pipelines.compile.window_notes import notes


def describe(plan: Plan) -> str:
    spec = plan.spec
    lines = [f"pipeline   {plan.pipeline_name}",
             *[f"code       {kind:9} {uri}" for kind, uri in sorted(plan.code_uris.items())],
             f"runs       {plan.base_uri}/runs/<execution id>/  (data snapshots, checkpoints, models, evaluation)",
             "", "DAG"]
    chain = (["Reconcile"] if spec.steps.reconcile else []) + ["Prepare"]
    lines.append("  " + " -> ".join(chain) + " -> {" + ", ".join(m.step_name for m in plan.models) + "}")
    if spec.steps.evaluate:
        tail = "Register" if spec.steps.register else "(nothing)"
        lines.append(f"  -> Evaluate -> Gate({spec.gate.metric} >= GateThreshold) -> {tail} | MetricBelowThreshold")
    lines += ["", "parameters (Studio can change them per execution)"]
    lines += [f"  {name:24} {p.type:8} {p.default}" + (f"  (one of {len(p.enum)} values)" if p.enum else "")
              for name, p in plan.parameters.items()]
    lines += ["", "caching", *_caching(plan)]
    lines += ["", "long documents", *[f"  {line}" for line in notes(spec)]] if notes(spec) else []
    if plan.uploads:
        lines += ["", "local folders synced before a run"]
        lines += [f"  {path} -> {uri}" for uri, path in sorted(plan.uploads.items())]
    return "\n".join(lines)


def _caching(plan: Plan) -> list[str]:
    caching = plan.spec.caching
    if not caching.enabled:
        return ["  off: every step runs in every execution"]
    source = plan.parameters["DataSource"].default
    first = "Reconcile" if plan.spec.steps.reconcile else "Prepare"
    lines = [f"  job steps reuse an earlier execution's result for {caching.expire_after} when their arguments "
             "are the same (SageMaker's cache key)"]
    if any(source == uri for uri in plan.uploads):
        lines.append(f"  DataSource is content-addressed ({source}): changed local data changes {first}'s key")
    else:
        lines += [f"  {first}'s key is the DataSource URI and DataSnapshot, never the objects themselves: make local and "
                  "make pipeline-start list the prefix (keys, sizes, ETags) and pass its digest, so new objects run "
                  f"{first} again and unchanged ones stay cached",
                  "  a schedule passes its invocation time as DataSnapshot (nothing lists S3 before a scheduled start): "
                  "each scheduled execution reads its data again; a start from Studio keeps the default '-' unless "
                  "you give it a new value"]
    lines += ["  each step's code URI is its code identity: steps/ modules it imports, the experiment's code, the user "
              "functions it calls (not experiment.yaml): an edit re-runs only the steps that run the edited code",
              "  local folders (data, models, transform input, notebooks) are staged under the digest of every byte"]
    return lines
