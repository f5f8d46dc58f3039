"""An InstanceCount: 2 training job on this machine: two hosts (two process trees on 127.0.0.1, each with its
own /opt/ml and resource config) started through the image's launcher form one process group and train one
model: one set of metrics, the artifact from algo-1 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

from conftest import ROOT
from tiny import make_texts, write_jsonl

from pipelines.compile import bundle
from pipelines.local.jobs import Job
from pipelines.local.training import run_training
from pipelines.store.local import LocalStore
from steps import contract


def test_two_hosts_train_one_model(tmp_path, tiny_model):
    write_jsonl(tmp_path / "rec" / "data.jsonl", [{"doc_id": i, **r} for i, r in enumerate(make_texts(30))])
    (tmp_path / "pre").mkdir()
    (tmp_path / "pre" / "tiny").symlink_to(tiny_model)
    subprocess.run([sys.executable, "-m", "steps.prepare", "--input", str(tmp_path / "rec"), "--pretrained",
                    str(tmp_path / "pre"), "--output", str(tmp_path / "prepared"), "--model", "tiny:32:head:0:"],
                   check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    store = LocalStore(tmp_path / "store")
    store.put_bytes("s3://b/code/c.tar.gz", bundle.build(ROOT, ROOT / "experiments" / "EXP-0001-docstring-topics"))
    store.upload(tmp_path / "prepared" / "tiny", "s3://b/prepared/tiny")
    store.upload(tiny_model, "s3://b/pretrained/tiny")
    channel = {"code": "s3://b/code/", "train": "s3://b/prepared/tiny", "pretrained": "s3://b/pretrained/tiny"}
    definition = {
        "InputDataConfig": [{"ChannelName": n, "DataSource": {"S3DataSource": {"S3Uri": u}}} for n, u in channel.items()],
        "ResourceConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.xlarge"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"}, "Environment": {"WANDB_MODE": "disabled"},
        "AlgorithmSpecification": {"MetricDefinitions": contract.metric_definitions()}}
    job = Job(name="Train-tiny", sandbox=tmp_path / "jobs" / "Train-tiny", log=tmp_path / "logs" / "Train-tiny.log",
              store=store, code_root=ROOT)
    hp = {"epochs": "1", "batch_size": "8", "learning_rate": "0.001", "model_name": "tiny", "seed": "3"}
    properties = run_training(job, definition, hp)

    algo1, algo2 = job.opt_ml, tmp_path / "jobs" / "Train-tiny.algo-2" / "opt" / "ml"
    results = json.loads((algo1 / "output" / "data" / "train_results.json").read_text())
    assert results["processes"] == 2  # one group of two, not two models of one
    second = (tmp_path / "logs" / "Train-tiny.algo-2.log").read_text()
    assert "--num_machines 2 --machine_rank 1" in second and "steps.export" not in second
    assert not (algo2 / "model" / "model.pt").exists() and not (algo2 / "output" / "data" / "train_results.json").exists()
    assert json.loads((algo2 / "input" / "config" / "resourceconfig.json").read_text())["current_host"] == "algo-2"
    assert properties["metrics"]["validation:loss"] > 0
    with tarfile.open(store.path(properties["ModelArtifacts"]["S3ModelArtifacts"])) as tar:
        assert "model.pt" in tar.getnames()  # algo-1's artifact, exported once
