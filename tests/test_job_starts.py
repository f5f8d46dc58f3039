"""Every job starts as SageMaker starts our image: one row per kind of job (argv, working directory, the
variables SageMaker sets, the files it writes), checked against the Dockerfile, the launcher and what the
local executor really starts; and the programs survive the launcher refilling the code folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT
from tiny import make_texts, write_jsonl

from pipelines.compile import bundle
from pipelines.local import container
from pipelines.local.jobs import Job, launch
from pipelines.store.local import LocalStore
from steps import contract, launcher

# The SageMaker facts, written out once more here: (argv after the ENTRYPOINT, what SageMaker sets, what it writes).
ROWS = {
    "training": (["train"], {"TRAINING_JOB_NAME", "TRAINING_JOB_ARN"},
                 {"/opt/ml/input/config/hyperparameters.json", "/opt/ml/input/config/resourceconfig.json",
                  "/opt/ml/input/config/inputdataconfig.json"}),
    "processing": (["<AppSpecification.ContainerArguments>"], set(),
                   {"/opt/ml/config/processingjobconfig.json", "/opt/ml/config/resourceconfig.json"}),
    "transform": (["serve"], {"SAGEMAKER_BATCH", "SAGEMAKER_MAX_PAYLOAD_IN_MB", "SAGEMAKER_BATCH_STRATEGY",
                              "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"}, set()),
    "hosting": (["serve"], set(), set()),
}
PROBE = ("import json, os, sys; print('PROBE ' + json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(), "
         "'env': dict(os.environ)}))")


def golden(name: str) -> dict:
    return json.loads((ROOT / "tests" / "golden" / f"{name}.json").read_text())


def steps_of(definition: dict) -> list[dict]:
    out = []
    for step in definition["Steps"]:
        out += [step, *step["Arguments"].get("IfSteps", []), *step["Arguments"].get("ElseSteps", [])]
    return out


def dockerfile() -> dict:
    text = (ROOT / "containers" / "Dockerfile").read_text()
    env_block = re.search(r"^ENV (.+?)(?<!\\)\n", text, re.M | re.S).group(1)
    return {"workdir": re.findall(r"^WORKDIR (\S+)", text, re.M),
            "entrypoint": json.loads(re.search(r"^ENTRYPOINT (\[.*\])", text, re.M).group(1)),
            "env": dict(pair.split("=", 1) for pair in env_block.replace("\\\n", " ").split()),
            "from": re.findall(r"^FROM (.+)$", text, re.M)}


def test_the_dockerfile_is_the_contract():
    image = dockerfile()
    assert image["workdir"] == [contract.IMAGE_WORKDIR]
    assert image["entrypoint"] == list(contract.IMAGE_ENTRYPOINT)
    assert image["env"] == contract.IMAGE_ENV
    assert all("--platform=linux/amd64" in line for line in image["from"])


def test_no_job_starts_in_the_folder_the_launcher_refills():
    """The defect: WORKDIR /opt/ml/code, which unpack_code replaced, left every program in a deleted folder."""
    workdir, code = Path(contract.IMAGE_WORKDIR), Path(contract.CODE_DIR)
    assert workdir != code and code not in workdir.parents


def test_the_contract_table_is_what_sagemaker_does():
    assert {kind: (list(row["argv"]), set(row["env"]), set(row["files"])) for kind, row in contract.JOB_STARTS.items()} \
        == ROWS


def test_the_launcher_runs_what_each_job_kind_passes():
    assert {ROWS["training"][0][0], ROWS["transform"][0][0]} <= set(launcher.PROGRAMS)
    programs = {s["Arguments"]["AppSpecification"]["ContainerArguments"][0]
                for name in ("EXP-0001-docstring-topics", "EXP-0002-bert-vs-distilbert")
                for s in steps_of(golden(name)) if s["Type"] == "Processing"}
    assert programs == {"reconcile", "prepare", "evaluate"} and programs <= set(launcher.PROGRAMS)
    assert not any("ContainerEntrypoint" in s["Arguments"].get("AppSpecification", {})
                   for s in steps_of(golden("EXP-0001-docstring-topics")) if s["Type"] == "Processing")


def starts() -> dict[str, container.Start]:
    definition = golden("EXP-0002-bert-vs-distilbert")
    train = next(s for s in steps_of(definition) if s["Type"] == "Training")["Arguments"]
    prepare = next(s for s in steps_of(definition) if s["Name"] == "Prepare")["Arguments"]
    transform = {"BatchStrategy": "MultiRecord", "MaxPayloadInMB": 20, "MaxConcurrentTransforms": 4}
    return {"training": container.training("Train-bert-1", {"epochs": 3}, train, "algo-1", ["algo-1"], "local"),
            "processing": container.processing("Prepare", prepare, "local"),
            "transform": container.serving(transform), "hosting": container.serving()}


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_the_executor_starts_each_kind_as_its_row_says(kind, tmp_path, monkeypatch):
    """What the started process really sees: argv, working directory, environment, files."""
    for leak in ("SM_NUM_GPUS", "SM_CHANNEL_TRAIN", "SM_HOSTS", "AWS_ACCESS_KEY_ID", "SOME_SHELL_VARIABLE"):
        monkeypatch.setenv(leak, "from-the-host")
    monkeypatch.setenv("SMPIPE_SERVE_WORKERS", "1")  # a setting of ours passes
    start = starts()[kind]
    job = Job(name=kind, sandbox=tmp_path / "sb", log=tmp_path / "log", store=LocalStore(tmp_path / "s"),
              code_root=ROOT)
    job.fresh_sandbox()
    log = launch(job, replace(start, entrypoint=("python3", "-c", PROBE)), {"FROM_THE_DEFINITION": "1"})
    seen = json.loads(log.split("PROBE ", 1)[1])
    argv, sagemaker_env, files = ROWS[kind]
    if kind == "processing":
        argv = ["prepare", *start.argv[1:]]
    assert seen["argv"] == argv
    assert seen["cwd"] == str(tmp_path / "sb" / contract.IMAGE_WORKDIR.lstrip("/"))
    env = seen["env"]
    assert sagemaker_env <= set(env) and env["FROM_THE_DEFINITION"] == "1" and env["SMPIPE_SERVE_WORKERS"] == "1"
    assert not [k for k in env if k.startswith("SM_") or k in ("AWS_ACCESS_KEY_ID", "SOME_SHELL_VARIABLE")]
    assert {k: env[k] for k in contract.IMAGE_ENV if k != "PYTHONPATH"} == {
        k: v for k, v in contract.IMAGE_ENV.items() if k != "PYTHONPATH"}
    assert env["PYTHONPATH"] == str(ROOT) and env[contract.OPT_ML_ENV] == str(job.opt_ml)
    assert {p for p in files if (job.opt_ml / p[len("/opt/ml/"):]).is_file()} == files


def test_training_files_are_what_sagemaker_writes(tmp_path):
    start = starts()["training"]
    container.write_files(start, tmp_path)
    config = tmp_path / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == {"epochs": "3"}  # strings, as SageMaker
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1" and resources["hosts"] == ["algo-1"]
    assert resources["instance_groups"][0]["hosts"] == ["algo-1"]
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"code", "train", "pretrained"}


def test_programs_run_from_a_working_directory_inside_the_code_folder(tmp_path):
    """An image whose WORKDIR is the code folder (the old one) still runs every program: the launcher empties
    and refills that folder, never removes it. Without that, prepare's transformers import fails."""
    from tiny import make_model

    opt_ml = tmp_path / "opt" / "ml"
    code = opt_ml / "processing" / "input" / "code"
    code.mkdir(parents=True)
    (code / "b.tar.gz").write_bytes(bundle.build(ROOT, ROOT / "experiments" / "EXP-0001-docstring-topics"))
    rows = [{"doc_id": i, **r} for i, r in enumerate(make_texts(10))]
    write_jsonl(tmp_path / "rec" / "data.jsonl", rows)
    make_model(tmp_path / "pre" / "a", [r["text"] for r in rows])
    cwd = opt_ml / "code"  # = contract.local(CODE_DIR) under this SMPIPE_OPT_ML: where the bundle unpacks
    cwd.mkdir(parents=True)
    env = {**os.environ, contract.OPT_ML_ENV: str(opt_ml), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "steps.launcher", "prepare", "--input", str(tmp_path / "rec"),
                             "--pretrained", str(tmp_path / "pre"), "--output", str(tmp_path / "out"),
                             "--model", "a:32:head:0:"], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "out" / "a" / "model.json").is_file() and cwd.is_dir()


def test_a_transform_raises_the_servers_body_limit_to_its_payload(monkeypatch):
    """An endpoint takes at most 6 MB a request; a transform with MaxPayloadInMB 20 sends up to 20 MB."""
    from steps.serving.app import max_body_mb

    env = starts()["transform"].sagemaker_env
    assert env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "20" and env["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert max_body_mb() == 20
    monkeypatch.delenv("SAGEMAKER_BATCH")
    assert max_body_mb() == 6


def test_docker_runs_the_same_start_in_the_image(tmp_path):
    """docker=1: the image's own entrypoint and WORKDIR, /opt/ml mounted, SageMaker's variables, no host ones."""
    start = starts()["training"]
    cmd = container.docker_command(start, {"FROM_THE_DEFINITION": "1"}, tmp_path, "acct.dkr.ecr/smpipe:1")
    assert cmd[:4] == ["docker", "run", "--rm", "--network"] and f"{tmp_path.resolve()}:/opt/ml" in cmd
    assert cmd[-2:] == ["acct.dkr.ecr/smpipe:1", "train"] and "--entrypoint" not in cmd
    env = {cmd[i + 1].split("=", 1)[0] for i, part in enumerate(cmd) if part == "-e"}
    assert env == {"FROM_THE_DEFINITION", "TRAINING_JOB_NAME", "TRAINING_JOB_ARN"}


def test_docker_without_a_daemon_is_one_clear_error(monkeypatch, tmp_path):
    from pipelines.local.run import docker_image
    from pipelines.spec.errors import SpecError

    monkeypatch.setenv("PATH", str(tmp_path))  # no docker at all
    with pytest.raises(SpecError, match="docker=1 needs Docker"):
        docker_image("smpipe:1")
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SpecError, match="daemon is not reachable"):
        docker_image("smpipe:1")
