"""What `make local` prints while jobs run: progress lines at a bounded rate per job, and paths never cut."""

from __future__ import annotations

import io

from pipelines.local import jobs
from pipelines.local.jobs import TerminalProgress
from steps.core import progress as progress_module
from steps.core.progress import PREFIX, Progress


def test_progress_lines_reach_the_terminal_at_a_bounded_rate_per_job(monkeypatch):
    clock, said = [100.0], []
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    echo = TerminalProgress(said.append, every=15)
    echo("Train-a", "train a epoch 1/2: started, 90 batches")  # the first at once
    clock[0] += 5
    echo("Train-a", "train a epoch 1/2: 10/90 batches (2/s, 0m05s elapsed, 0m40s left)")  # too soon: dropped
    echo("Train-b", "train b epoch 1/2: started, 30 batches")  # another job has its own clock
    clock[0] += 11
    echo("Train-a", "train a epoch 1/2: 40/90 batches (2.5/s, 0m16s elapsed, 0m20s left)")
    clock[0] += 1
    echo("Train-a", "train a epoch 1/2: 90/90 batches (2.6/s, 0m17s in all)")  # a phase's end: always
    assert said == ["  … Train-a: train a epoch 1/2: started, 90 batches",
                    "  … Train-b: train b epoch 1/2: started, 30 batches",
                    "  … Train-a: train a epoch 1/2: 40/90 batches (2.5/s, 0m16s elapsed, 0m20s left)",
                    "  … Train-a: train a epoch 1/2: 90/90 batches (2.6/s, 0m17s in all)"]


def test_a_job_progress_line_says_done_rate_and_time_left(monkeypatch):
    clock, out = [0.0], io.StringIO()
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    bar = Progress("train m epoch 1/3", total=100, unit="batches", every=10, stream=out)
    clock[0] = 40.0
    bar.update(20)  # 0.5 batches a second: a slow step keeps its digits
    clock[0] = 200.0
    bar.count = 100
    bar.done()
    assert out.getvalue().splitlines() == [
        f"{PREFIX}train m epoch 1/3: started, 100 batches",
        f"{PREFIX}train m epoch 1/3: 20/100 batches (0.5/s, 0m40s elapsed, 2m40s left)",
        f"{PREFIX}train m epoch 1/3: 100/100 batches (0.5/s, 3m20s in all)"]


def test_the_summary_never_wraps_a_path_at_a_narrow_terminal(tmp_path, monkeypatch, capsys):
    from pipelines.local.executor import Options, Outcome
    from pipelines.local.summary import summarise
    from pipelines.store import open_store

    monkeypatch.setenv("COLUMNS", "40")
    folder = tmp_path / ("a-long-folder-name-" * 5) / "local-20261207-000000-abcdef"
    outcome = Outcome("local-20261207-000000-abcdef", "Succeeded", folder,
                      {"Prepare": {"status": "Succeeded", "seconds": 1.0, "reason": ""}})
    options = Options(store=open_store(tmp_path / "store"), runs=tmp_path, registry=tmp_path / "registry",
                      code_root=tmp_path)
    summarise(outcome, options)
    assert f"logs and state: {folder}" in capsys.readouterr().out.splitlines()
