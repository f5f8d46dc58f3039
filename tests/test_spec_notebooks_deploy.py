"""Notebook and deploy sections, second pass: what SageMaker would refuse when the notebook job or the endpoint
starts (an instance type without training jobs, an image of another region or no image at all, parameters no
variable receives or that replace the run's own inputs; serverless with instance settings, a KMS key it
cannot use or network isolation) is refused at validate, at its line. Experiments of one project may not
share a pipeline name or an endpoint name."""

from __future__ import annotations

import nbformat
import pytest

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load

HEAD = ("name: EXP-0042-minimal\nregister: {group: minimal-group}\ndata: {source: 's3://bucket-a/raw/'}\n"
        "models:\n  - {name: bert, source: 's3://bucket-a/models/bert/'}\n")
CELL = 'prepared_uri = ""\ntop_k = 10\nthreshold: float = 0.5\n'


def with_notebook(write_spec, notebook: str, cell: str = CELL):
    path = write_spec(HEAD + f"notebooks:\n  - {notebook}\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cell, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("1")]
    nbformat.write(nb, str(path.parent / "analysis.ipynb"))
    return path


def problems_of(path) -> list:
    with pytest.raises(SpecError) as info:
        load(path)
    return info.value.problems


def one(problems: list, field: str):
    hit = next((p for p in problems if p.path == field), None)
    assert hit is not None, [str(p) for p in problems]
    assert hit.file.endswith("experiment.yaml") and hit.line >= 1 and (hit.line > 1 or field == "name")
    return hit


NB = "{name: analysis, path: analysis.ipynb, after: Evaluate"


@pytest.mark.parametrize("notebook,field,words", [
    (NB + ", instance_type: ml.c6g.xlarge}", "notebooks[0].instance_type", "runs training jobs on"),
    (NB + ", instance_type: ml.m5.huge}", "notebooks[0].instance_type", "did you mean"),
    (NB + ", image_uri: 'ubuntu:22.04'}", "notebooks[0].image_uri", "is not an ECR image URI"),
    (NB + ", image_uri: 885854791233.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-distribution-prod:2-cpu}",
     "notebooks[0].image_uri", "the image is in eu-west-1, the jobs run in us-east-1"),
    (NB + ", parameters: {top-k: 5}}", "notebooks[0].parameters.top-k", "is not a Python name"),
    (NB + ", parameters: {class: 5}}", "notebooks[0].parameters.class", "is not a Python name"),
    (NB + ", parameters: {topk: 5}}", "notebooks[0].parameters.topk", "(it sets: prepared_uri, threshold, top_k)"),
    (NB + ", parameters: {prepared_uri: s3://elsewhere/x}}", "notebooks[0].parameters.prepared_uri",
     "what the step passes the notebook"),
])
def test_notebook_settings_sagemaker_would_refuse_are_refused_at_their_line(write_spec, notebook, field, words):
    hit = one(problems_of(with_notebook(write_spec, notebook)), field)
    assert words in f"{hit.message} {hit.hint}"


def test_a_region_without_a_known_notebook_image_asks_for_one(write_spec):
    path = with_notebook(write_spec, NB + "}")
    path.write_text(path.read_text() + "aws: {region: eu-west-1}\n")
    assert "no SageMaker Distribution image is known here for eu-west-1" in one(problems_of(path),
                                                                               "notebooks[0].image_uri").message


def test_good_notebook_settings_pass(write_spec):
    load(with_notebook(write_spec, NB + ", parameters: {top_k: 5, threshold: 0.7}, instance_type: ml.m5.large, "
                       "image_uri: 885854791233.dkr.ecr.us-east-1.amazonaws.com/sagemaker-distribution-prod:2-cpu}"))
    # a parameters cell that is not plain Python (a magic) cannot be read: its names are not checked
    load(with_notebook(write_spec, NB + ", parameters: {anything: 1}}", cell="%matplotlib inline\nx = 1\n"))


@pytest.mark.parametrize("extra,field,words", [
    ("deploy: {serverless: {memory_mb: 2048}, instance_count: 2}\n", "deploy.instance_count", "has no instances"),
    ("deploy: {serverless: {memory_mb: 2048}, instance_type: ml.c5.xlarge}\n", "deploy.instance_type",
     "has no instances"),
    ("deploy: {serverless: {memory_mb: 2048}}\naws: {kms_key: alias/ml}\n", "deploy.serverless",
     "no storage volume for aws.kms_key"),
    ("deploy: {serverless: {memory_mb: 2048}}\naws: {network_isolation: true}\n", "deploy.serverless",
     "network isolation"),
])
def test_serverless_settings_that_would_be_ignored_or_refused_are_refused(write_spec, extra, field, words):
    assert words in one(problems_of(write_spec(HEAD + extra)), field).message


def test_serverless_with_a_kms_key_passes_once_accepted(write_spec):
    load(write_spec(HEAD + "deploy: {serverless: {memory_mb: 2048, without_kms_key: true}}\naws: {kms_key: alias/ml}\n"))
    load(write_spec(HEAD + "deploy: {serverless: {memory_mb: 2048}}\n"))


def test_two_experiments_of_a_project_may_not_share_a_name_or_an_endpoint(write_spec):
    write_spec(HEAD.replace("EXP-0042-minimal", "EXP-0007-other") + "deploy: {endpoint_name: Ticket-Router}\n",
               name="EXP-0007-other")
    same_name = write_spec(HEAD.replace("EXP-0042-minimal", "EXP-0007-other"), name="EXP-0008-copy")
    assert "experiments/EXP-0007-other/experiment.yaml is named EXP-0007-other too" in one(
        problems_of(same_name), "name").message
    same_endpoint = write_spec(HEAD.replace("EXP-0042-minimal", "EXP-0009-router") +
                               "deploy: {endpoint_name: ticket-router}\n", name="EXP-0009-router")
    assert "deploys to the endpoint Ticket-Router too" in one(problems_of(same_endpoint), "deploy.endpoint_name").message
    load(write_spec(HEAD.replace("EXP-0042-minimal", "EXP-0010-own") + "deploy: {endpoint_name: mine}\n",
                    name="EXP-0010-own"))


def test_the_example_experiments_have_distinct_names_and_endpoints():
    from conftest import ROOT

    for folder in sorted((ROOT / "experiments").iterdir()):
        load(folder / "experiment.yaml")  # each is checked against the others
