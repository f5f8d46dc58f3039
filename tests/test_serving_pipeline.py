"""The serving half of the definition: the registered package names our image's content types and the
execution that made it; a Model and a TransformStep score TransformSource in the gate's true branch."""

from __future__ import annotations

from test_compile import compiled, steps_of

from pipelines.local.transform import requests_for

CONTENT = ["application/json", "application/jsonlines", "text/csv"]


def test_gate_true_branch_registers_then_scores():
    defn = compiled("EXP-0001-docstring-topics")
    gate = next(s for s in defn["Steps"] if s["Type"] == "Condition")
    assert [s["Name"] for s in gate["Arguments"]["IfSteps"]] == ["Register", "BestModel", "Transform"]
    steps = steps_of(defn)
    transform = steps["Transform"]["Arguments"]
    assert transform["ModelName"] == {"Get": "Steps.BestModel.ModelName"}
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": "Parameters.TransformSource"}
    assert transform["TransformInput"]["SplitType"] == "Line" and transform["TransformOutput"]["AssembleWith"] == "Line"
    assert transform["BatchStrategy"] == "MultiRecord"
    out = transform["TransformOutput"]["S3OutputPath"]["Std:Join"]["Values"]
    assert out[1] == {"Get": "Execution.PipelineExecutionId"} and out[-1] == "transform"
    model = steps["BestModel"]["Arguments"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == steps["Register"]["Arguments"]["InferenceSpecification"][
        "Containers"][0]["ModelDataUrl"]
    assert {"Key": "smpipe:experiment", "Value": "EXP-0001-docstring-topics"} in model["Tags"]
    source = {p["Name"]: p for p in defn["Parameters"]}["TransformSource"]["DefaultValue"]
    assert "/assets/transform/" in source and source.endswith("/")


def test_the_model_package_says_how_to_call_it_and_where_it_came_from():
    register = steps_of(compiled("EXP-0002-bert-vs-distilbert"))["Register"]["Arguments"]
    spec = register["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == CONTENT and spec["SupportedResponseMIMETypes"] == CONTENT
    assert spec["SupportedRealtimeInferenceInstanceTypes"] == ["ml.g5.xlarge", "ml.m5.xlarge"]
    assert register["CustomerMetadataProperties"]["smpipe:execution-id"] == {"Get": "Execution.PipelineExecutionId"}
    assert "Transform" not in steps_of(compiled("EXP-0002-bert-vs-distilbert"))  # no transform: section


def test_records_are_grouped_as_batch_transform_groups_them():
    records = [b"x" * 400_000] * 5 + [b"y"]
    multi = requests_for(records, "MultiRecord", 1)
    assert [len(r) for r in multi] == [2, 2, 2] and sum(map(len, multi)) == 6
    assert all(sum(len(x) + 1 for x in r) <= 2**20 for r in multi)
    assert requests_for(records, "SingleRecord", 1) == [[r] for r in records]
    assert requests_for([], "MultiRecord", 6) == []
