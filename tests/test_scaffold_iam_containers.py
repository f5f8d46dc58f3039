"""new-exp scaffolding, the IAM policies, and the Dockerfiles against the container contract."""

from __future__ import annotations

import configparser
import re
import shutil

import pytest
from conftest import ROOT

from pipelines.cli import main
from pipelines.errors import SpecError
from pipelines.iam import policies
from pipelines.load import load
from pipelines.plan import plan
from pipelines.scaffold import new_experiment
from steps import contract


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
    from pipelines.compile import definition

    assert '"Name": "Train-minilm"' in definition(plan(load(folder / "experiment.yaml")))


def test_iam_policy_is_scoped_to_the_experiment():
    loaded = plan(load(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert" / "experiment.yaml"))
    docs = policies(loaded)
    statements = {s["Sid"]: s for s in docs["execution_role"]["policy"]["Statement"]}
    assert statements["ExperimentPrefix"]["Resource"][0] == \
        "arn:aws:s3:::acme-ml-experiments/experiments/EXP-0002-bert-vs-distilbert/*"
    assert statements["Kms"]["Resource"].startswith("arn:aws:kms:us-east-1:111122223333:key/")
    assert statements["Image"]["Resource"] == "arn:aws:ecr:us-east-1:111122223333:repository/smpipe"
    assert statements["WandbKey"]["Resource"].endswith(":secret:wandb/api-key-*")
    assert statements["PassOwnRole"]["Resource"] == "arn:aws:iam::111122223333:role/ml-pipelines"
    assert "Vpc" in statements and "Registry" in statements
    assert all(s["Resource"] != "*" or s["Sid"] in ("ImageToken", "Metrics", "Vpc") for s in statements.values())
    scheduler = docs["scheduler_role"]
    assert scheduler["trust"]["Statement"][0]["Principal"]["Service"] == "scheduler.amazonaws.com"
    assert scheduler["policy"]["Statement"][0]["Resource"].endswith(":pipeline/exp-0002-bert-vs-distilbert")


def test_dockerfile_matches_the_contract():
    text = (ROOT / "containers" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python3", "-m", "steps.launcher"]' in text
    assert "USE_SMDEBUG=0" in text and "PYTHONPATH=/opt/smpipe" in text
    copied = re.search(r"COPY (steps/\S+ )+/opt/smpipe/steps/", text).group(0)
    for module in ("steps/__init__.py", "steps/contract.py", "steps/launcher.py"):
        assert module in copied and (ROOT / module).is_file()
    assert f"WORKDIR {contract.CODE_DIR}" in text
    launcher_imports = re.findall(r"^from steps import (\w+)", (ROOT / "steps/launcher.py").read_text(), re.M)
    assert launcher_imports == ["contract"]  # the launcher runs before the bundle is unpacked


def test_job_requirements_match_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    pinned = dict(line.strip().split("==") for line in config["options"]["install_requires"].strip().splitlines())
    for line in (ROOT / "containers" / "requirements-jobs.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert pinned[name] == version, name


def test_build_push_without_docker_says_so(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    rc = main(["build-push", str(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert")])
    assert rc == 1 and "docker is not installed" in capsys.readouterr().err
