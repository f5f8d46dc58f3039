"""The executor's expression language, one DSL feature at a time."""

from __future__ import annotations

import pytest

from pipelines.local import expressions as ex
from pipelines.local.cache import expiry, symbolic
from pipelines.local.graph import dependencies, flatten, parameter_values


def scope(**steps):
    return ex.Scope(parameters={"Threshold": 0.5, "Name": "x"}, execution={"PipelineExecutionId": "e-1"},
                    steps=steps, read_property_file=lambda step, name: {"best": {"f1": 0.7}, "list": [{"v": 3}]})


def test_get_parameters_execution_and_step_properties():
    s = scope(Prep={"ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {"S3Uri": "s3://b/k"}}]}},
              Tune={"TrainingJobSummaries": [{"TrainingJobName": "t-001"}]})
    assert ex.evaluate({"Get": "Parameters.Threshold"}, s) == 0.5
    assert ex.evaluate({"Get": "Execution.PipelineExecutionId"}, s) == "e-1"
    assert ex.evaluate({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"}, s) == "s3://b/k"
    assert ex.evaluate({"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"}, s) == "t-001"


def test_join_and_json_get():
    s = scope(Eval={})
    join = {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}, 3, True]}}
    assert ex.evaluate(join, s) == "s3://b/e-1/3/true"
    get = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "best.f1"}}
    assert ex.evaluate(get, s) == 0.7
    assert ex.evaluate({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.R"}, "Path": "list[0].v"}},
                       s) == 3


def test_conditions():
    s = scope(Eval={})
    left = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.R"}, "Path": "best.f1"}}
    assert ex.condition({"Type": "GreaterThanOrEqualTo", "LeftValue": left, "RightValue": {"Get": "Parameters.Threshold"}}, s)
    assert not ex.condition({"Type": "LessThan", "LeftValue": left, "RightValue": 0.7}, s)
    assert ex.condition({"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": 1, "RightValue": 2}}, s)
    assert ex.condition({"Type": "In", "QueryValue": {"Get": "Parameters.Name"}, "Values": ["x", "y"]}, s)
    assert ex.condition({"Type": "Or", "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 2},
                                                      {"Type": "Equals", "LeftValue": 2, "RightValue": 2}]}, s)


@pytest.mark.parametrize("expr,message", [
    ({"Get": "Parameters.Nope"}, "unknown parameter"),
    ({"Get": "Steps.Missing.X"}, "has not run"),
    ({"Get": "Weird.Thing"}, "unsupported reference"),
])
def test_bad_references(expr, message):
    with pytest.raises(ex.ExpressionError, match=message):
        ex.evaluate(expr, scope())


def test_dependencies_from_references_depends_on_and_conditions():
    steps = flatten([
        {"Name": "A", "Type": "Processing", "Arguments": {}},
        {"Name": "B", "Type": "Training", "Arguments": {"X": {"Get": "Steps.A.Out"}}},
        {"Name": "C", "Type": "Processing", "Arguments": {}, "DependsOn": ["B"]},
        {"Name": "Gate", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Steps.C.X"}, "RightValue": 1}],
            "IfSteps": [{"Name": "Yes", "Type": "Fail", "Arguments": {}}], "ElseSteps": []}},
    ])
    deps = dependencies(steps)
    assert deps == {"A": set(), "B": {"A"}, "C": {"B"}, "Gate": {"C"}, "Yes": {"Gate"}}


def test_parameters_are_cast_and_checked():
    definition = {"Parameters": [{"Name": "N", "Type": "Integer", "DefaultValue": 1},
                                 {"Name": "F", "Type": "Float", "DefaultValue": 0.5},
                                 {"Name": "S", "Type": "String", "DefaultValue": "a"}]}
    assert parameter_values(definition, {"N": "3"}) == {"N": 3, "F": 0.5, "S": "a"}
    with pytest.raises(ex.ExpressionError, match="not a Integer"):
        parameter_values(definition, {"N": "three"})
    with pytest.raises(ex.ExpressionError, match="unknown parameter"):
        parameter_values(definition, {"Nope": "1"})


def test_cache_key_keeps_execution_variables_symbolic():
    s = scope()
    args = {"Out": {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}]}},
            "T": {"Get": "Parameters.Threshold"}}
    assert symbolic(args, s) == {"Out": args["Out"], "T": 0.5}


def test_expiry_durations():
    assert expiry("P30D").days == 30 and expiry("PT2H").seconds == 7200 and expiry("P1W").days == 7
