"""train → export → evaluate on a tiny local model, launched the way a SageMaker job launches them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT
from tiny import make_texts, write_jsonl

from steps import contract
from steps.core import faults

HP = {"epochs": "2", "batch_size": "16", "learning_rate": "0.001", "model_name": "tiny", "seed": "3"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    write_jsonl(root / "rec" / "data.jsonl", [{"doc_id": i, **r} for i, r in enumerate(make_texts(40))])
    (root / "pre").mkdir()
    for name in ("a", "b"):
        (root / "pre" / name).symlink_to(tiny_model)
    run([sys.executable, "-m", "steps.prepare", "--input", str(root / "rec"), "--pretrained", str(root / "pre"),
         "--output", str(root / "out"), "--model", "a:32:head:0:", "--model", "b:24:head+tail:0:"])
    return root / "out"


def run(cmd, env=None, check=True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    result = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def training_sandbox(root: Path, data: Path, model: Path, hp: dict) -> Path:
    opt_ml = root / "opt" / "ml"
    shutil.copytree(data, opt_ml / "input/data/train")
    shutil.copytree(model, opt_ml / "input/data/pretrained")
    (opt_ml / "input/config").mkdir(parents=True)
    (opt_ml / "input/config/hyperparameters.json").write_text(json.dumps(hp))
    return opt_ml


def launch_training(tmp: Path, prepared: Path, tiny_model: Path, name: str, env=None) -> tuple[Path, str]:
    opt_ml = training_sandbox(tmp / name, prepared / name, tiny_model, HP)
    result = run([sys.executable, "-m", "steps.launcher", "train"], env={contract.OPT_ML_ENV: str(opt_ml), **(env or {})})
    return opt_ml, result.stdout + result.stderr


def test_training_job_trains_exports_and_reports(tmp_path, prepared, tiny_model):
    opt_ml, log = launch_training(tmp_path, prepared, tiny_model, "a")
    assert "ForCausalLMLoss" not in log, log[-3000:]  # a causal-LM warning on a classifier reads like a bug
    model_dir = opt_ml / "model"
    assert (model_dir / "model.pt").is_file() and (model_dir / "hf" / "config.json").is_file()
    assert json.loads((model_dir / "labels.json").read_text())["labels"] == ["cooking", "space", "sports"]
    report = json.loads((model_dir / "export_report.json").read_text())
    assert report["passed"] and report["max_abs_diff"] <= report["tolerance"]
    results = json.loads((opt_ml / "output/data/train_results.json").read_text())
    assert results["processes"] == 1 and len(results["history"]) == 2
    assert (opt_ml / "output/data/curves.png").stat().st_size > 1000
    for item in contract.metric_definitions():  # every compiled regex finds its metric in the log
        found = __import__("re").search(item["Regex"], log)
        assert bool(found) == (item["Name"] != "train:mfu"), item["Name"]  # MFU only on GPUs of known peak
    speed = results["history"][0]["throughput"]
    assert speed["tokens_per_second"] > speed["samples_per_second"] > 0 and speed["mfu"] is None
    assert 0 < speed["padding_efficiency"] <= 1


def test_training_under_accelerate_with_two_processes(tmp_path, prepared, tiny_model):
    opt_ml, log = launch_training(tmp_path, prepared, tiny_model, "b", {"SMPIPE_PROCESSES_PER_HOST": "2"})
    assert "accelerate.commands.launch --num_processes 2" in log
    results = json.loads((opt_ml / "output/data/train_results.json").read_text())
    assert results["processes"] == 2
    assert (opt_ml / "model" / "model.pt").is_file()


def train_direct(tmp: Path, prepared: Path, tiny_model: Path, ckpt: str, env=None, check=True, lr="0.001"):
    args = [sys.executable, "-m", "steps.train", "--data-dir", str(prepared / "a"), "--pretrained", str(tiny_model),
            "--model-dir", str(tmp / f"model-{ckpt}"), "--checkpoint-dir", str(tmp / ckpt), "--epochs", "3",
            "--batch-size", "16", "--learning-rate", lr, "--seed", "5"]
    return run(args, env={contract.OPT_ML_ENV: str(tmp / f"optml-{ckpt}"), **(env or {})}, check=check)


def history(tmp: Path, ckpt: str) -> list[dict]:
    return json.loads((tmp / f"model-{ckpt}" / "train_results.json").read_text())["history"]


def test_a_checkpoint_of_another_run_is_never_resumed(tmp_path, prepared, tiny_model):
    train_direct(tmp_path, prepared, tiny_model, "shared")
    first = history(tmp_path, "shared")
    second = train_direct(tmp_path, prepared, tiny_model, "shared", lr="0.003")
    log = second.stdout + second.stderr
    assert "belongs to another run (learning_rate 0.001 → 0.003); starting fresh" in log
    assert "resuming" not in log
    again = history(tmp_path, "shared")
    assert [h["epoch"] for h in again] == [1, 2, 3]  # trained every epoch: a loss curve, not an export alone
    assert [h["validation:loss"] for h in again] != [h["validation:loss"] for h in first]
    progress = json.loads((tmp_path / "shared" / "progress.json").read_text())
    assert progress["fingerprint"]["hyperparameters"]["learning_rate"] == "0.003"


def test_a_finished_checkpoint_does_not_skip_training_in_a_new_job(tmp_path, prepared, tiny_model):
    train_direct(tmp_path, prepared, tiny_model, "done", env={"TRAINING_JOB_NAME": "job-1"})
    second = train_direct(tmp_path, prepared, tiny_model, "done", env={"TRAINING_JOB_NAME": "job-2"})
    assert "finished run of job job-1; this job (job-2) trains from the start" in second.stdout + second.stderr
    assert [h["epoch"] for h in history(tmp_path, "done")] == [1, 2, 3]


def test_prepare_records_a_fingerprint_of_the_split_content(prepared):
    a = json.loads((prepared / "a" / "model.json").read_text())["fingerprint"]
    b = json.loads((prepared / "b" / "model.json").read_text())["fingerprint"]
    assert len(a) == 16 and a != b  # same split, other model settings


def test_resume_after_interruption_gives_the_same_result(tmp_path, prepared, tiny_model):
    train_direct(tmp_path, prepared, tiny_model, "straight")
    stopped = train_direct(tmp_path, prepared, tiny_model, "resumed", {faults.STOP_AFTER_EPOCH: "1"}, check=False)
    assert stopped.returncode == 3
    assert json.loads((tmp_path / "resumed" / "progress.json").read_text())["epoch"] == 1
    resumed = train_direct(tmp_path, prepared, tiny_model, "resumed")
    assert "resuming after epoch 1 of 3 from" in resumed.stdout + resumed.stderr
    a = json.loads((tmp_path / "model-straight" / "train_results.json").read_text())["history"]
    b = json.loads((tmp_path / "model-resumed" / "train_results.json").read_text())["history"]
    assert [h["epoch"] for h in b] == [1, 2, 3]
    # Losses agree to 1e-4, not bit for bit (CPU kernels across processes); a tiny model's logits are near ties,
    # so macro F1 can swing with such a difference (seen once in CI: 0.167 vs 0.491 at equal loss): not compared.
    for x, y in zip(a, b, strict=True):
        assert x["validation:loss"] == pytest.approx(y["validation:loss"], rel=1e-4, abs=1e-5)


def test_export_fails_above_tolerance_and_writes_no_model(tmp_path, prepared, tiny_model):
    train_direct(tmp_path, prepared, tiny_model, "ck")
    model_dir = tmp_path / "model-ck"
    result = run([sys.executable, "-m", "steps.export", "--model-dir", str(model_dir), "--data-dir",
                  str(prepared / "a"), "--tolerance", "-1"], check=False)
    assert result.returncode != 0 and "export parity failed" in result.stderr
    assert not (model_dir / "model.pt").exists()
    assert json.loads((model_dir / "export_report.json").read_text())["passed"] is False


def test_evaluate_compares_models_on_the_same_test_set(tmp_path, prepared, tiny_model):
    models = tmp_path / "models"
    for name in ("a", "b"):
        opt_ml, _ = launch_training(tmp_path, prepared, tiny_model, name)
        (models / name).mkdir(parents=True)
        with tarfile.open(models / name / "model.tar.gz", "w:gz") as tar:
            for path in (opt_ml / "model").iterdir():
                tar.add(path, arcname=path.name)
    out, best = tmp_path / "eval", tmp_path / "best"
    run([sys.executable, "-m", "steps.evaluate", "--model", "a", "--model", "b", "--prepared", str(prepared),
         "--models-dir", str(models), "--output", str(out), "--best-output", str(best)])
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["best"]["model"] in ("a", "b")
    assert 0 <= evaluation["best"]["test_macro_f1"] <= 1
    assert [row["model"] for row in evaluation["leaderboard"]][0] == evaluation["best"]["model"]
    assert set(evaluation["models"]["a"]["per_label"]) == {"cooking", "space", "sports"}
    from steps.core.compare import mcnemar_p

    cmp = evaluation["comparisons"][0]
    assert cmp["p_value"] == mcnemar_p(cmp["only_best_correct"], cmp["only_other_correct"])["p_value"]
    documents = sum(v["support"] for v in evaluation["models"]["a"]["per_label"].values())
    assert 0 <= cmp["only_best_correct"] + cmp["only_other_correct"] <= documents
    report = (out / "report.md").read_text()
    assert report.startswith("# Evaluation") and "Holm's correction over the 1 pair(s)" in report
    pair = evaluation["pairwise"][0]
    assert (pair["a"], pair["b"]) == tuple(row["model"] for row in evaluation["leaderboard"])
    assert pair["p_value"] == cmp["p_value"] == pair["p_holm"]  # one pair: nothing to correct
    assert isinstance(evaluation["flags"], list) and all(f"- {flag}" in report for flag in evaluation["flags"])
    training = evaluation["models"]["a"]["training"]
    assert training["strategy"] == "head" and training["stride"] is None and training["device"] == "1 × cpu"
    assert training["steps_run"] == training["steps_planned"] > 0 and training["epochs_run"] == training["epochs_planned"]
    assert "| steps run / planned |" in report and f"| {training['steps_run']} / {training['steps_planned']} |" in report
    assert (out / "confusion_a.png").is_file()
    assert (best / "model.tar.gz").read_bytes() == (models / evaluation["best"]["model"] / "model.tar.gz").read_bytes()


def test_a_max_steps_cap_that_cuts_training_is_said_in_the_log_and_the_results(tmp_path, prepared, tiny_model):
    opt_ml = training_sandbox(tmp_path / "capped", prepared / "a", tiny_model, {**HP, "max_steps": "2"})
    result = run([sys.executable, "-m", "steps.launcher", "train"], env={contract.OPT_ML_ENV: str(opt_ml)})
    results = json.loads((opt_ml / "output/data/train_results.json").read_text())
    assert results["steps_run"] == 2 < results["steps_planned"] and results["max_steps"] == 2
    assert f"max_steps 2 reached in epoch 1 of {HP['epochs']}: 2 of {results['steps_planned']} planned steps run" in \
        result.stdout + result.stderr
    from steps.core.compare import flags

    flagged = flags({"capped": {"true": [0, 1], "predicted": [0, 1], "per_label": {"x": {"f1": 1}, "y": {"f1": 1}},
                                "training": {"steps_run": 2, "steps_planned": 12, "max_steps": 2}}}, ["x", "y"])
    assert flagged == ["capped stopped at max_steps 2: 2 of 12 planned steps ran"]


def test_evaluate_names_a_missing_model(tmp_path, prepared):
    result = run([sys.executable, "-m", "steps.evaluate", "--model", "ghost", "--prepared", str(prepared),
                  "--models-dir", str(tmp_path), "--output", str(tmp_path / "o")], check=False)
    assert result.returncode == 2 and "no model.tar.gz or model.pt for 'ghost'" in result.stderr


def test_launcher_refuses_unknown_programs():
    result = run([sys.executable, "-m", "steps.launcher", "deploy"], check=False)
    assert result.returncode == 2 and "unknown program" in result.stderr


def test_programs_explain_themselves():
    for program in ("reconcile", "prepare", "train", "export", "evaluate"):
        out = run([sys.executable, "-m", f"steps.{program}", "--help"]).stdout
        assert "usage:" in out and len(out) > 200


COMPILES_ONCE = """
import json, sys
import torch
from torch._dynamo.testing import CompileCounter
from steps import train
args = train.parse_args(sys.argv[1:])
t = train.build(args)
assert t.base.training, "the model must be in train mode from the first step"
counter = CompileCounter()
t.model = torch.compile(t.model, backend=counter, dynamic=True)
for epoch in range(2):
    train.train_epoch(t, epoch)  # validation (eval mode on the plain module) at the end of each
print(json.dumps({"compiled": counter.frame_count}))
"""


def test_training_compiles_the_model_once_across_steps_and_epochs(tmp_path, prepared, tiny_model):
    """Dynamo's guards see neither the first forward pass's config change nor a train/eval switch."""
    result = run([sys.executable, "-c", COMPILES_ONCE, "--data-dir", str(prepared / "a"), "--pretrained",
                  str(tiny_model), "--model-dir", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "c"),
                  "--batch-size", "16", "--seed", "5"], env={contract.OPT_ML_ENV: str(tmp_path / "optml")})
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"compiled": 1}
