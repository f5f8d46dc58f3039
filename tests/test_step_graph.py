"""The step graph is the one list of steps: the definition, `make plan`'s DAG, the cost lines and the notebooks'
``after:`` check all agree with it, for every example and for the shapes an option can take."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from pipelines.compile import cost
from pipelines.compile.definition import definition
from pipelines.compile.describe import describe
from pipelines.compile.plan import plan
from pipelines.local.graph import flatten
from pipelines.spec import step_graph
from pipelines.spec.load import load

EXAMPLES = sorted(p.name for p in (ROOT / "experiments").iterdir() if (p / "experiment.yaml").is_file())
SHAPES = [(), ("steps.reconcile=false",), ("steps.register=false",), ("notebooks=[]",),
          ("steps.evaluate=false", "steps.register=false", "transform=null", "notebooks=[]")]


def planned(name: str, *overrides: str):
    return plan(load(ROOT / "experiments" / name / "experiment.yaml", list(overrides)))


@pytest.mark.parametrize("overrides", SHAPES, ids=lambda o: ",".join(o) or "as-written")
@pytest.mark.parametrize("name", EXAMPLES)
def test_the_definition_holds_exactly_the_graphs_steps_in_its_order(name, overrides):
    the_plan = planned(name, *overrides)
    steps = json.loads(definition(the_plan))["Steps"]
    assert [s["Name"] for s in steps] == [n.name for n in the_plan.graph.top_level()]
    flat = flatten(steps)
    assert {n: s["Type"] for n, (s, _) in flat.items()} == {n.name: n.type for n in the_plan.graph.nodes}
    assert {n: owner for n, (_, owner) in flat.items()} == {n.name: n.owner for n in the_plan.graph.nodes}


@pytest.mark.parametrize("name", EXAMPLES)
def test_cost_lines_are_the_graphs_billed_steps(name):
    the_plan = planned(name)
    assert [line.step for line in cost.lines(the_plan)] == [n.name for n in the_plan.graph.nodes if n.billed]


def test_every_node_is_built_after_what_it_depends_on():
    for name in EXAMPLES:
        seen: set[str] = set()
        for node in planned(name).graph.nodes:
            assert set(node.depends_on) <= seen, (name, node.name, node.depends_on)
            seen.add(node.name)


def test_plan_prints_the_dag_from_the_graph():
    text = describe(planned("EXP-0002-bert-vs-distilbert", "steps.register=false"))
    assert "  Reconcile -> Prepare -> {Train-bert, Train-distilbert} -> Evaluate -> Gate" in text
    assert "Gate(test:macro_f1 >= GateThreshold): true -> (nothing); false -> MetricBelowThreshold" in text


def test_a_notebook_may_run_after_the_graphs_job_steps_only(write_spec):
    the_plan = planned("EXP-0003-tuning-minilm")
    assert step_graph.build(the_plan.spec).after_names() == ["Reconcile", "Prepare", "Tune-minilm", "Evaluate"]


def test_programs_of_the_graph_are_programs_the_launcher_runs():
    from steps.launcher import PROGRAMS

    programs = {n.program for name in EXAMPLES for n in planned(name).graph.nodes if n.program}
    assert programs and programs <= set(PROGRAMS), programs - set(PROGRAMS)
