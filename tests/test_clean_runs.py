"""`make clean-runs keep=N`: old executions go, never what the registry or a kept execution's cache uses.
The layout is the executor's (state.json, definition.json, the store's <experiment>/runs/<id>/); the
newcomer path test prunes real executions through the Makefile."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

from pipelines.local.disk import executions, human, prune
from pipelines.store.local import LocalStore

BASE = "s3://smpipe-local/experiments/{exp}/runs"


def execution(root, exp: str, n: int, cached_from: str | None = None, register: str | None = None) -> str:
    """One finished execution of ``exp``: 1 MB of job sandbox, a model archive and a checkpoint in the store."""
    id_ = f"local-20261207-00000{n}-{exp[-4:]}"
    runs, store = root / "runs", root / "store"
    folder = runs / id_
    (folder / "jobs" / "Train" / "opt" / "ml").mkdir(parents=True)
    (folder / "jobs" / "Train" / "opt" / "ml" / "copy.bin").write_bytes(b"\0" * 1_000_000)
    join = {"Std:Join": {"On": "/", "Values": [BASE.format(exp=exp), {"Get": "Execution.PipelineExecutionId"},
                                               "evaluation"]}}
    (folder / "definition.json").write_text(json.dumps({"Steps": [{"Name": "Evaluate", "Arguments": {"Out": join}}]}))
    steps = {"Evaluate": {"status": "Cached", "reason": cached_from} if cached_from else {"status": "Succeeded"}}
    (folder / "state.json").write_text(json.dumps({"execution_id": id_, "started": f"2026-12-07T00:00:0{n}",
                                                   "steps": steps}))
    out = store / "smpipe-local" / "experiments" / exp / "runs" / id_
    (out / "best-model").mkdir(parents=True)
    (out / "best-model" / "model.tar.gz").write_bytes(b"m" * 1000)
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "epoch-1.bin").write_bytes(b"c" * 500_000)
    cache = runs / "cache" / "Evaluate" / f"key{n}.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"execution": cached_from or id_, "properties": {}}))
    if register:
        entry = runs / "registry" / register / f"{n}.json"
        entry.parent.mkdir(parents=True, exist_ok=True)
        model = f"{BASE.format(exp=exp)}/{cached_from or id_}/best-model/model.tar.gz"
        entry.write_text(json.dumps({"ModelDataUrl": model, "PipelineExecutionId": id_}))
    return id_


def test_the_newest_of_each_experiment_stay_and_the_older_go(tmp_path):
    old, mid, new = (execution(tmp_path, "EXP-0001-aaaa", n) for n in (1, 2, 3))
    other = execution(tmp_path, "EXP-0002-bbbb", 4)
    lines = prune(tmp_path / "runs", LocalStore(tmp_path / "store"), keep=2)
    left = {e.id for e in executions(tmp_path / "runs", LocalStore(tmp_path / "store"))}
    assert left == {mid, new, other}
    assert not (tmp_path / "store" / "smpipe-local" / "experiments" / "EXP-0001-aaaa" / "runs" / old).exists()
    assert f"deleted {old} (EXP-0001-aaaa, 1.5 MB)" in lines and lines[-1].startswith("freed 1.5 MB of 1 execution")
    assert not (tmp_path / "runs" / "cache" / "Evaluate" / "key1.json").exists()  # the cache never names it again
    assert (tmp_path / "runs" / "cache" / "Evaluate" / "key2.json").exists()


def test_what_a_kept_execution_reused_from_the_cache_stays_whole(tmp_path):
    first = execution(tmp_path, "EXP-0001-aaaa", 1)
    execution(tmp_path, "EXP-0001-aaaa", 2)
    newest = execution(tmp_path, "EXP-0001-aaaa", 3, cached_from=first)  # its Evaluate is the first's output
    lines = prune(tmp_path / "runs", LocalStore(tmp_path / "store"), keep=1)
    assert {e.id for e in executions(tmp_path / "runs", LocalStore(tmp_path / "store"))} == {first, newest}
    assert f"kept {first} (EXP-0001-aaaa): a kept execution reuses its cached outputs" in lines
    assert (tmp_path / "runs" / "cache" / "Evaluate" / "key3.json").exists()


def test_a_registered_model_survives_the_pruning_of_its_execution(tmp_path):
    registered = execution(tmp_path, "EXP-0001-aaaa", 1, register="group")
    execution(tmp_path, "EXP-0001-aaaa", 2)
    out = tmp_path / "store" / "smpipe-local" / "experiments" / "EXP-0001-aaaa" / "runs" / registered
    lines = prune(tmp_path / "runs", LocalStore(tmp_path / "store"), keep=1)
    assert (out / "best-model" / "model.tar.gz").read_bytes() == b"m" * 1000  # make serve version=1 still works
    assert not (out / "checkpoints").exists() and not (tmp_path / "runs" / registered).exists()
    assert any(line.startswith(f"deleted {registered}") and "kept the registered model" in line for line in lines)


def test_a_dry_run_deletes_nothing_and_another_experiment_is_left_alone(tmp_path):
    a1, a2 = execution(tmp_path, "EXP-0001-aaaa", 1), execution(tmp_path, "EXP-0001-aaaa", 2)
    b1, b2 = execution(tmp_path, "EXP-0002-bbbb", 3), execution(tmp_path, "EXP-0002-bbbb", 4)
    store = LocalStore(tmp_path / "store")
    lines = prune(tmp_path / "runs", store, keep=1, experiment="EXP-0002-bbbb", dry_run=True)
    assert f"would delete {b1} (EXP-0002-bbbb, 1.5 MB)" in lines and a1 not in " ".join(lines[:1])
    assert {e.id for e in executions(tmp_path / "runs", store)} == {a1, a2, b1, b2}
    prune(tmp_path / "runs", store, keep=1, experiment="EXP-0002-bbbb")
    assert {e.id for e in executions(tmp_path / "runs", store)} == {a1, a2, b2}


def test_sizes_count_a_hard_link_once(tmp_path):
    execution(tmp_path, "EXP-0001-aaaa", 1)
    (only,) = executions(tmp_path / "runs", LocalStore(tmp_path / "store"))
    before = only.bytes()
    copy = only.folder / "jobs" / "Train" / "opt" / "ml" / "copy.bin"
    copy.with_name("link.bin").hardlink_to(copy)
    assert only.bytes() == before and 1_501_000 < before < 1_502_000 and human(before) == "1.5 MB"


def test_keep_is_required_and_at_least_one(tmp_path):
    for args in ([], ["--keep", "0"]):
        done = subprocess.run([sys.executable, "-m", "pipelines", "clean-runs", *args, "--runs", str(tmp_path)],
                              cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 2 and "keep=N with N >= 1" in done.stderr and "Traceback" not in done.stderr
