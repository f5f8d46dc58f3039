"""new-exp scaffolding, the IAM policies, and the Dockerfiles against the container contract."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from iam_eval import allowed

from pipelines.aws.iam import policies
from pipelines.aws.images import image_stack, setup_pins, stack_problems
from pipelines.cli import main
from pipelines.compile.plan import plan
from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.spec.scaffold import new_experiment


@pytest.fixture
def project(tmp_path):
    for folder in ("templates", "steps", "experiments"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_new_experiment_is_refused_until_stubs_are_written(project):
    folder = new_experiment("EXP-0042-my-task", root=project)
    with pytest.raises(SpecError) as info:
        load(folder / "experiment.yaml")
    stubs = [p for p in info.value.problems if "is a stub" in p.message]
    assert len(stubs) == 5 and all(p.file.endswith("user_defined_funcs.py") for p in stubs)
    (folder / "user_defined_funcs.py").unlink()  # every default instead
    loaded = load(folder / "experiment.yaml")
    assert loaded.spec.name == "EXP-0042-my-task" and plan(loaded).pipeline_name == "EXP-0042-my-task"


def test_new_experiment_from_another_and_no_overwrite(project):
    folder = new_experiment("EXP-0043-copy", "EXP-0001-docstring-topics", root=project)
    assert load(folder / "experiment.yaml").spec.name == "EXP-0043-copy"
    assert (folder / "raw" / "packages.txt").is_file()
    before = (folder / "experiment.yaml").read_text()
    with pytest.raises(SpecError, match="already exists"):
        new_experiment("EXP-0043-copy", root=project)
    assert (folder / "experiment.yaml").read_text() == before
    with pytest.raises(SpecError, match="not an experiment name"):
        new_experiment("my experiment", root=project)
    assert not [p for p in (project / "experiments").iterdir() if p.name.startswith(".")]  # no staging left


def test_new_experiment_compiles_once_written(project):
    folder = new_experiment("EXP-0044-written", root=project)
    (folder / "user_defined_funcs.py").write_text(
        "def encode_data(batch, tokenizer, model):\n    return tokenizer(batch['text'], truncation=True)\n")
    from pipelines.compile.definition import definition

    assert '"Name": "Train-minilm"' in definition(plan(load(folder / "experiment.yaml")))


EXP2 = "arn:aws:s3:::acme-ml-experiments/experiments/EXP-0002-bert-vs-distilbert"
SAGEMAKER = "arn:aws:sagemaker:us-east-1:111122223333"
EC2 = "arn:aws:ec2:us-east-1:111122223333"
# (action, resource, request context, allowed?): what the jobs do, and the neighbours they must not touch.
REQUESTS = [
    ("s3:GetObject", "arn:aws:s3:::acme-raw/tickets/2026-11/part-0.csv", {}, True),  # DataSource default
    ("s3:GetObject", "arn:aws:s3:::acme-raw/tickets/latest/part-0.csv", {}, True),  # the schedule's override
    ("s3:GetObject", "arn:aws:s3:::acme-raw/tickets/2026-11-private/x.csv", {}, False),  # neighbour prefix
    ("s3:GetObject", "arn:aws:s3:::acme-ml-models/bert-base-uncased/model.safetensors", {}, True),
    ("s3:GetObject", "arn:aws:s3:::acme-ml-models/bert-base-uncased-private/model.safetensors", {}, False),
    ("s3:ListBucket", "arn:aws:s3:::acme-raw", {"s3:prefix": "tickets/2026-11/"}, True),
    ("s3:ListBucket", "arn:aws:s3:::acme-raw", {"s3:prefix": "tickets/latest/part"}, True),
    ("s3:ListBucket", "arn:aws:s3:::acme-raw", {"s3:prefix": "tickets/"}, False),
    ("s3:ListBucket", "arn:aws:s3:::acme-raw/tickets/2026-11/part-0.csv", {"s3:prefix": "tickets/2026-11/"}, False),
    ("s3:PutObject", f"{EXP2}/runs/exec-1/evaluation/evaluation.json", {}, True),
    ("s3:DeleteObject", f"{EXP2}/runs/exec-1/checkpoints/bert/epoch_1/model.safetensors", {}, False),  # none does
    ("s3:PutObject", f"{EXP2}/assets/raw/abc/x.csv", {}, False),  # uploaded by the CLI, not by jobs
    ("s3:PutObject", "arn:aws:s3:::acme-ml-experiments/experiments/code/abc.tar.gz", {}, False),
    ("s3:GetObject", "arn:aws:s3:::acme-ml-experiments/experiments/code/abc.tar.gz", {}, True),
    ("s3:PutObject", "arn:aws:s3:::acme-ml-experiments/experiments/EXP-0009-other/runs/x", {}, False),
    ("sagemaker:CreateTrainingJob", f"{SAGEMAKER}:training-job/exp2-bert-abc",
     {"aws:RequestTag/smpipe:experiment": "EXP-0002-bert-vs-distilbert"}, True),
    ("sagemaker:CreateTrainingJob", f"{SAGEMAKER}:training-job/other", {"aws:RequestTag/smpipe:experiment": "EXP-9"}, False),
    # a training job reads its own sagemaker:pipeline-execution-arn tag (steps/core/execution.py)
    ("sagemaker:ListTags", f"{SAGEMAKER}:training-job/exp2-bert-abc",
     {"aws:ResourceTag/smpipe:experiment": "EXP-0002-bert-vs-distilbert"}, True),
    ("sagemaker:ListTags", f"{SAGEMAKER}:training-job/other", {"aws:ResourceTag/smpipe:experiment": "EXP-9"}, False),
    ("sagemaker:StartPipelineExecution", f"{SAGEMAKER}:pipeline/exp-0002-bert-vs-distilbert", {}, False),
    ("sagemaker:CreateModelPackage", f"{SAGEMAKER}:model-package/ticket-router/3", {}, True),
    ("sagemaker:AddTags", f"{SAGEMAKER}:model-package/ticket-router/3", {}, True),
    # what the Pipelines service calls with the role to fill RegisterModel and TuningStep properties
    ("sagemaker:DescribeModelPackage", f"{SAGEMAKER}:model-package/ticket-router/3", {}, True),
    ("sagemaker:ListTrainingJobsForHyperParameterTuningJob", f"{SAGEMAKER}:hyper-parameter-tuning-job/exp2-bert",
     {"aws:ResourceTag/smpipe:experiment": "EXP-0002-bert-vs-distilbert"}, True),
    ("iam:PassRole", "arn:aws:iam::111122223333:role/ml-pipelines", {"iam:PassedToService": "sagemaker.amazonaws.com"}, True),
    ("iam:PassRole", "arn:aws:iam::111122223333:role/admin", {"iam:PassedToService": "sagemaker.amazonaws.com"}, False),
    ("ec2:CreateNetworkInterface", f"{EC2}:network-interface/*", {"ec2:Subnet": f"{EC2}:subnet/subnet-0a1b2c3d4e5f67890"}, True),
    ("ec2:CreateNetworkInterface", f"{EC2}:network-interface/*", {"ec2:Subnet": f"{EC2}:subnet/subnet-0ffffffffffffffff"}, False),
    ("ec2:CreateNetworkInterface", f"{EC2}:subnet/subnet-0a1b2c3d4e5f67890", {}, True),
    ("ec2:CreateNetworkInterface", f"{EC2}:security-group/sg-0999999999999999f", {}, False),
    ("ec2:DeleteNetworkInterface", f"{EC2}:network-interface/eni-1",
     {"ec2:Subnet": f"{EC2}:subnet/subnet-0ffffffffffffffff"}, False),
    ("kms:CreateGrant", "arn:aws:kms:us-east-1:111122223333:key/0b6c7e5e-1a2b-4c3d-9e8f-0123456789ab",
     {"kms:GrantIsForAWSResource": "true"}, True),
    ("kms:CreateGrant", "arn:aws:kms:us-east-1:111122223333:key/0b6c7e5e-1a2b-4c3d-9e8f-0123456789ab",
     {"kms:GrantIsForAWSResource": "false"}, False),
    ("kms:Decrypt", "arn:aws:kms:us-east-1:111122223333:key/0b6c7e5e-1a2b-4c3d-9e8f-0123456789ab", {}, True),
    ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:111122223333:secret:wandb/api-key-AbCdEf", {}, True),
    ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf", {}, False),
    ("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:111122223333:repository/smpipe", {}, True),
    ("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:111122223333:repository/other", {}, False),
]


@pytest.mark.parametrize(("action", "resource", "context", "expected"), REQUESTS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REQUESTS)])
def test_execution_role_allows_what_jobs_do_and_nothing_next_to_it(action, resource, context, expected):
    policy = policies(plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml")))
    assert allowed(policy["execution_role"]["policy"], action, resource, context) is expected


def test_scheduler_role_starts_only_this_pipeline():
    docs = policies(plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml")))
    scheduler = docs["scheduler_role"]
    assert scheduler["trust"]["Statement"][0]["Principal"]["Service"] == "scheduler.amazonaws.com"
    assert allowed(scheduler["policy"], "sagemaker:StartPipelineExecution", f"{SAGEMAKER}:pipeline/exp-0002-bert-vs-distilbert")
    assert not allowed(scheduler["policy"], "sagemaker:StartPipelineExecution", f"{SAGEMAKER}:pipeline/other")
    assert docs["execution_role"]["trust"]["Statement"][0]["Principal"]["Service"] == "sagemaker.amazonaws.com"


def test_no_list_bucket_on_object_arns_and_no_bare_prefixes():
    policy = policies(plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml")))
    for statement in policy["execution_role"]["policy"]["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Action"] == "s3:ListBucket":
            assert all(r.count("/") == 0 for r in resources) and "s3:prefix" in statement["Condition"]["StringLike"]
        for resource in resources:
            if resource.startswith("arn:aws:s3:::") and resource.endswith("*"):
                assert resource.endswith("/*"), resource


def test_dockerfile_matches_the_contract():
    text = (ROOT / "containers" / "Dockerfile").read_text()
    copied = re.search(r"COPY (steps/\S+ )+/opt/smpipe/steps/", text).group(0)
    for module in ("steps/__init__.py", "steps/contract.py", "steps/launcher.py"):
        assert module in copied and (ROOT / module).is_file()
    launcher_imports = re.findall(r"^from steps import (\w+)", (ROOT / "steps/launcher.py").read_text(), re.M)
    assert launcher_imports == ["contract"]  # the launcher runs before the bundle is unpacked
    # (WORKDIR, ENTRYPOINT and ENV against steps/contract.py: tests/test_job_starts.py)


def test_the_job_image_resolves_against_our_pins():
    assert stack_problems() == []
    base, packages = image_stack()
    _, pins = setup_pins()
    assert packages["torch"] == pins["torch"] and base["python"] == "3.11"


def stack_copy(tmp_path, requirements: str | None = None, base: dict | None = None) -> Path:
    shutil.copytree(ROOT / "containers", tmp_path / "containers")
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    if requirements is not None:
        (tmp_path / "containers" / "requirements-jobs.txt").write_text(requirements)
    if base is not None:
        (tmp_path / "containers" / "base-image.json").write_text(json.dumps(base))
    return tmp_path


def test_the_old_base_image_torch_is_refused(tmp_path):
    """The defect this check exists for: transformers 5 on a torch 2.5.1 base cannot import the model code."""
    text = (ROOT / "containers" / "requirements-jobs.txt").read_text().replace("torch==2.13.0\n", "")
    dlc = {"image": "python:3.11-slim-bookworm", "python": "3.11", "provides": {"torch": "2.5.1"}}
    problems = stack_problems(stack_copy(tmp_path, text, dlc))
    assert "transformers==5.23.0 needs torch>=2.6, the image has torch==2.5.1" in problems
    assert "the image pins torch==2.5.1, setup.cfg torch==2.13.0" in problems


def test_image_pins_python_and_dockerfile_must_agree(tmp_path):
    text = (ROOT / "containers" / "requirements-jobs.txt").read_text().replace("accelerate==1.15.0", "accelerate==1.0.0")
    problems = stack_problems(stack_copy(tmp_path, text, {"image": "python:3.12-slim", "python": "3.12"}))
    assert "the image pins accelerate==1.0.0, setup.cfg accelerate==1.15.0" in problems
    assert any("python 3.12 is outside setup.cfg's python_requires" in p for p in problems)
    assert any("BASE_IMAGE default is not python:3.12-slim" in p for p in problems)
    no_torch = stack_problems(stack_copy(tmp_path / "b", text.replace("torch==2.13.0\n", "")))
    assert any("declares no torch version" in p for p in no_torch)


def test_build_push_without_docker_says_so(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    rc = main(["build-push", str(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert")])
    assert rc == 1 and "docker is not installed" in capsys.readouterr().err
