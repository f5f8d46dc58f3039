"""The pipeline's steps, built once from the spec: the one place that knows which steps exist, their names,
what runs them and what they depend on.

The definition's step order, the builders (one per kind), `make plan`'s DAG, the cost lines, the notebooks'
``after:`` check and the local summary all read this graph; none of them re-derives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.spec.experiment import Experiment

GATE = "Gate"
FAIL = "MetricBelowThreshold"
AFTER_KINDS = ("reconcile", "prepare", "train", "tune", "evaluate")  # what a notebook may run after


@dataclass(frozen=True)
class StepNode:
    name: str  # the definition's step name
    kind: str  # which builder makes it (compile/builders/__init__.py)
    type: str  # the definition's Type (the local handler that runs it)
    depends_on: tuple[str, ...] = ()
    program: str | None = None  # the launcher program the job runs (steps/launcher.py PROGRAMS)
    instance_parameter: str | None = None  # the pipeline parameter that picks its instance type
    instance_type: str | None = None  # or a fixed instance type
    count_parameter: str | None = None
    count: int = 1
    max_runtime_s: int | None = None
    jobs: int = 1  # training jobs it may start (a tuning job's trials)
    spot: bool = False
    outputs: tuple[str, ...] = ()
    owner: str | None = None  # the condition step whose branch holds it
    branch: str | None = None  # "if" or "else"
    model: str | None = None  # the model a Train or Tune step trains
    notebook: str | None = None

    @property
    def billed(self) -> bool:
        """It starts instances (a job), so the cost estimate has a line for it."""
        return self.instance_parameter is not None or self.instance_type is not None


@dataclass(frozen=True)
class StepGraph:
    nodes: tuple[StepNode, ...]  # in build order: every node after the nodes it depends on

    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def named(self, name: str) -> StepNode:
        return next(n for n in self.nodes if n.name == name)

    def of_kind(self, *kinds: str) -> list[StepNode]:
        return [n for n in self.nodes if n.kind in kinds]

    def top_level(self) -> list[StepNode]:
        """The definition's Steps, in its order (branch steps sit inside their condition)."""
        return [n for n in self.nodes if n.owner is None]

    def branch(self, owner: str, which: str) -> list[StepNode]:
        return [n for n in self.nodes if n.owner == owner and n.branch == which]

    def after_names(self) -> list[str]:
        return [n.name for n in self.of_kind(*AFTER_KINDS)]


def model_step_name(spec: Experiment, model_name: str) -> str:
    return f"{'Tune' if spec.tuning else 'Train'}-{model_name}"


def build(spec: Experiment) -> StepGraph:
    nodes = _data(spec)
    prepare = nodes[-1].name
    trains = _models(spec, prepare)
    nodes += trains
    if spec.steps.evaluate:
        nodes += _evaluation(spec, prepare, [t.name for t in trains])
    after = {n.name for n in nodes}
    nodes += [StepNode(name=f"Notebook-{nb.name}", kind="notebook", type="Training", notebook=nb.name,
                       depends_on=(nb.after,) if nb.after in after else (), instance_type=nb.instance_type,
                       max_runtime_s=nb.max_runtime_s, outputs=("notebook",)) for nb in spec.notebooks]
    return StepGraph(tuple(nodes))


def _data(spec: Experiment) -> list[StepNode]:
    res = spec.resources.processing
    job = {"type": "Processing", "instance_parameter": "ProcessingInstanceType", "max_runtime_s": res.max_runtime_s}
    nodes = []
    if spec.steps.reconcile:
        nodes.append(StepNode(name="Reconcile", kind="reconcile", program="reconcile", outputs=("reconciled",), **job))
    nodes.append(StepNode(name="Prepare", kind="prepare", program="prepare", outputs=("prepared",),
                          depends_on=tuple(n.name for n in nodes), **job))
    return nodes


def _models(spec: Experiment, prepare: str) -> list[StepNode]:
    res = spec.resources.training
    tuning = spec.tuning
    return [StepNode(name=model_step_name(spec, m.name), kind="tune" if tuning else "train",
                     type="Tuning" if tuning else "Training", program="train", depends_on=(prepare,), model=m.name,
                     instance_parameter="TrainInstanceType", count_parameter="TrainInstanceCount",
                     max_runtime_s=res.max_runtime_s, jobs=spec.tune.max_jobs if tuning and spec.tune else 1,
                     spot=res.spot, outputs=("model",)) for m in spec.models]


def _evaluation(spec: Experiment, prepare: str, trains: list[str]) -> list[StepNode]:
    res = spec.resources
    nodes = [StepNode(name="Evaluate", kind="evaluate", type="Processing", program="evaluate",
                      depends_on=(prepare, *trains), instance_parameter="EvaluationInstanceType",
                      max_runtime_s=res.evaluation.max_runtime_s, outputs=("evaluation", "best-model"))]
    branch = {"owner": GATE, "branch": "if"}
    if spec.steps.register:
        nodes.append(StepNode(name="Register", kind="register", type="RegisterModel", depends_on=("Evaluate",),
                              **branch))
    if spec.transform:
        nodes.append(StepNode(name="BestModel", kind="best_model", type="Model", depends_on=("Evaluate",), **branch))
        nodes.append(StepNode(name="Transform", kind="transform", type="Transform", program="serve",
                              depends_on=("BestModel",), instance_type=res.transform.instance_type,
                              count=res.transform.instance_count, max_runtime_s=res.transform.max_runtime_s,
                              outputs=("transform",), **branch))
    nodes.append(StepNode(name=FAIL, kind="fail", type="Fail", depends_on=("Evaluate",), owner=GATE, branch="else"))
    nodes.append(StepNode(name=GATE, kind="gate", type="Condition", depends_on=("Evaluate",)))
    return nodes
