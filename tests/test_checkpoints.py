"""Which checkpoint a training job resumes from (steps/training/checkpoints.py), decided from files alone."""

from __future__ import annotations

import json

import pytest

from steps.training import checkpoints

RUN = {"hyperparameters": {"learning_rate": "0.001", "epochs": "3"}, "data": "d1", "model": "m1", "processes": 1}


def saved(folder, epoch: int, run: dict | None = RUN, job: str = "job-a"):
    folder.mkdir(parents=True, exist_ok=True)
    progress = {"epoch": epoch, "best": 0.5, "best_epoch": epoch, "history": [{"epoch": e} for e in range(1, epoch + 1)],
                "job": job}
    if run is not None:
        progress["fingerprint"] = run
    (folder / "progress.json").write_text(json.dumps(progress))
    return folder


def test_nothing_saved_starts_fresh_silently(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-a")
    progress, why = checkpoints.decide(tmp_path, RUN, 3)
    assert progress["epoch"] == 0 and progress["fingerprint"] == RUN and progress["job"] == "job-a" and why == ""


def test_same_run_unfinished_resumes_from_its_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-b")  # a retried step is a new job of the same run
    progress, why = checkpoints.decide(saved(tmp_path, 1), RUN, 3)
    assert progress["epoch"] == 1 and len(progress["history"]) == 1
    assert why.startswith("resuming after epoch 1 of 3 from")


@pytest.mark.parametrize(("change", "named"), [
    ({"hyperparameters": {"learning_rate": "0.002", "epochs": "3"}}, "learning_rate 0.001 → 0.002"),
    ({"hyperparameters": {"learning_rate": "0.001"}}, "epochs 3 → None"),
    ({"data": "d2"}, "data d1 → d2"),
    ({"model": "m2"}, "model m1 → m2"),
    ({"processes": 2}, "processes 1 → 2"),
])
def test_another_runs_checkpoint_is_never_resumed(tmp_path, change, named):
    progress, why = checkpoints.decide(saved(tmp_path, 2), {**RUN, **change}, 3)
    assert progress["epoch"] == 0 and progress["history"] == []
    assert "belongs to another run" in why and named in why and why.endswith("starting fresh")


def test_a_finished_checkpoint_of_another_job_is_not_a_reason_to_skip_training(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-b")
    progress, why = checkpoints.decide(saved(tmp_path, 3, job="job-a"), RUN, 3)
    assert progress["epoch"] == 0
    assert "finished run of job job-a; this job (job-b) trains from the start" in why


def test_the_same_job_restarted_after_its_last_epoch_goes_straight_to_export(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-a")  # a spot restart of the same job keeps its name
    progress, _ = checkpoints.decide(saved(tmp_path, 3, job="job-a"), RUN, 3)
    assert progress["epoch"] == 3


def test_checkpoint_without_a_fingerprint_starts_fresh(tmp_path):
    progress, why = checkpoints.decide(saved(tmp_path, 2, run=None), RUN, 3)
    assert progress["epoch"] == 0 and "records no run fingerprint" in why


def test_clear_removes_only_what_training_writes(tmp_path):
    folder = saved(tmp_path, 2)
    for name in ("epoch_2", "epoch_3.tmp", "best", "best.tmp", "other-trial"):
        (folder / name).mkdir()
    checkpoints.clear(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["other-trial"]


def test_tuning_trials_keep_their_checkpoints_under_their_job_name(tmp_path, monkeypatch):
    opt_ml = tmp_path / "opt_ml"
    (opt_ml / "input" / "config").mkdir(parents=True)
    monkeypatch.setenv("SMPIPE_OPT_ML", str(opt_ml))
    monkeypatch.setenv("TRAINING_JOB_NAME", "tune-001")
    assert checkpoints.own_dir(tmp_path) == tmp_path  # a plain training job
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"_tuning_objective_metric": "validation:macro_f1"}))
    assert checkpoints.own_dir(tmp_path) == tmp_path / "tune-001"


def test_data_fingerprint_prefers_what_prepare_recorded(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"name": "a", "fingerprint": "abc"}))
    assert checkpoints.data_fingerprint(tmp_path) == "abc"
    (tmp_path / "model.json").write_text(json.dumps({"name": "a"}))
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "data.arrow").write_bytes(b"x" * 10)
    first = checkpoints.data_fingerprint(tmp_path)
    (tmp_path / "train" / "data.arrow").write_bytes(b"x" * 11)
    assert checkpoints.data_fingerprint(tmp_path) != first
