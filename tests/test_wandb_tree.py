"""wandb: one tree per execution, as MLflow's: every step's run (Prepare, each Train, Evaluate) is grouped and
tagged by the execution id and carries the experiment, step, code and data digests; Evaluate's run holds the
leaderboard, per-label and McNemar tables and the report. Real offline runs, read back from their files."""

from __future__ import annotations

import pytest
from wandb_offline import runs_under

from steps.core import tracking


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("SMPIPE_EXPERIMENT", "EXP-0042-minimal")
    monkeypatch.setenv("SMPIPE_CODE_SHA256", "c0de")
    monkeypatch.setenv("SMPIPE_EXECUTION_ID", "exec-7")


def test_every_step_of_an_execution_is_one_wandb_group(offline, tmp_path):
    (tmp_path / "report.md").write_text("# report\n")
    tracking.log_step("Prepare", "prepare", tmp_path / "prepare", "d47a", {"labels": 3}, {"documents/train": 24}, [],
                      {"rows": [{"model": "a", "split": "train", "rows": 30}]})
    run = tracking.start({"learning_rate": "1e-4"}, "a-train", str(tmp_path / "train"), step="Train-a",
                         data_sha256="d47a")
    tracking.log(run, {"train:loss": 0.5}, 1)
    tracking.finish(run)
    tracking.log_step("Evaluate", "evaluate", tmp_path / "evaluate", "d47a", {"best": "a"}, {"a/test_macro_f1": 0.8},
                      [tmp_path / "report.md"], {"leaderboard": [{"rank": 1, "model": "a", "test_macro_f1": 0.8}]})
    runs = {r["config"]["smpipe_step"]: r for r in runs_under(tmp_path)}
    assert set(runs) == {"Prepare", "Train-a", "Evaluate"}
    for step, run in runs.items():
        assert run["group"] == "exec-7" and run["tags"] == ["EXP-0042-minimal", "exec-7"], step
        assert run["config"]["smpipe_execution_id"] == "exec-7" and run["config"]["smpipe_data_sha256"] == "d47a"
        assert run["config"]["smpipe_code_sha256"] == "c0de" and run["name"] == f"{step} exec-7"
    assert runs["Prepare"]["job_type"] == "prepare" and "documents/train" in runs["Prepare"]["logged"]
    assert runs["Train-a"]["config"]["learning_rate"] == "1e-4" and "train:loss" in runs["Train-a"]["logged"]
    evaluate = runs["Evaluate"]
    assert {"a/test_macro_f1", "leaderboard"} <= evaluate["logged"] and "report.md" in evaluate["files"]
    assert (evaluate["folder"] / "files" / "report.md").read_text() == "# report\n"  # a copy, never a link
    assert not [p for p in tmp_path.rglob("*") if p.is_symlink()]  # S3 and tar get plain files


def test_wandb_that_cannot_start_leaves_the_step_untracked_and_says_so(offline, tmp_path, monkeypatch, capsys):
    import wandb

    monkeypatch.setattr(wandb, "init", lambda **_: (_ for _ in ()).throw(OSError("no space left")))
    tracking.log_step("Prepare", "prepare", tmp_path / "p", "d47a", {}, {"documents/train": 1}, [])
    err = capsys.readouterr().err
    assert "warning: wandb could not start for this job (OSError: no space left)" in err
