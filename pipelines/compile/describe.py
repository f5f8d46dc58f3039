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
    lines += _dag(plan)
    lines += ["", "parameters (Studio can change them per execution)"]
    lines += [f"  {name:24} {p.type:8} {p.default}" + (f"  (one of {len(p.enum)} values)" if p.enum else "")
              for name, p in plan.parameters.items()]
    lines += ["", "caching", *_caching(plan)]
    lines += ["", "long documents", *[f"  {line}" for line in notes(spec)]] if notes(spec) else []
    if plan.uploads:
        lines += ["", "local folders synced before a run"]
        lines += [f"  {path} -> {uri}" for uri, path in sorted(plan.uploads.items())]
    return "\n".join(lines)


def _dag(plan: Plan) -> list[str]:
    """The step graph in layers (steps of one layer run side by side); a condition's branches under it."""
    graph, placed, layers = plan.graph, set(), []
    top = graph.top_level()
    while len(placed) < len(top):
        layer = [n.name for n in top if n.name not in placed and set(n.depends_on) <= placed]
        placed |= set(layer)
        layers.append(layer[0] if len(layer) == 1 else "{" + ", ".join(layer) + "}")
    lines = ["  " + " -> ".join(layers)]
    for node in graph.of_kind("gate"):
        chosen = ", ".join(n.name for n in graph.branch(node.name, "if")) or "(nothing)"
        other = ", ".join(n.name for n in graph.branch(node.name, "else"))
        lines.append(f"  {node.name}({plan.spec.gate.metric} >= GateThreshold): true -> {chosen}; false -> {other}")
    return lines


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
