"""The local executor on hand-written definitions: processing, property files, conditions, fail,
register, caching, parameters and failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from tiny import make_texts, write_jsonl

from pipelines.compile import bundle
from pipelines.local.executor import Execution, Options
from pipelines.store.local import LocalStore

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def world(tmp_path):
    store = LocalStore(tmp_path / "store")
    (tmp_path / "experiment").mkdir()  # no user functions: the built-in defaults run
    store.put_bytes("s3://fixtures/code/bundle.tar.gz", bundle.build(ROOT, tmp_path / "experiment"))
    write_jsonl(store.path("s3://fixtures/raw/d.jsonl"), make_texts(5))
    lines = []
    options = Options(store=store, runs=tmp_path / "runs", registry=tmp_path / "registry", code_root=ROOT,
                      say=lines.append)
    return options, lines


def execute(options, name="processing_condition.json", **params):
    definition = json.loads((FIXTURES / name).read_text())
    options.parameters = {k: str(v) for k, v in params.items()}
    return Execution(definition, options, "fixture").run()


def test_processing_property_file_condition_and_register(world):
    options, lines = world
    outcome = execute(options)
    assert outcome.status == "Succeeded", outcome.failure
    assert [outcome.steps[n]["status"] for n in ("Reconcile", "Gate", "Register", "TooFew")] == \
        ["Succeeded", "Succeeded", "Succeeded", "NotRun"]
    assert outcome.steps["TooFew"]["reason"] == "branch not taken"
    entry = json.loads((options.registry / "fixture-group" / "1.json").read_text())
    assert entry["ModelApprovalStatus"] == "Approved"
    assert entry["ModelDataUrl"] == f"s3://fixtures/runs/{outcome.execution_id}/reconciled/data.jsonl"
    assert options.store.path(entry["ModelDataUrl"]).is_file()
    assert (outcome.folder / "logs" / "Reconcile.log").is_file()
    state = json.loads((outcome.folder / "state.json").read_text())
    assert state["parameters"] == {"RawData": "s3://fixtures/raw/", "MinRecords": 1}


def test_fail_step_reports_its_message(world):
    options, lines = world
    outcome = execute(options, MinRecords=1000)
    assert outcome.status == "Failed"
    assert "only 15 records, need 1000" in outcome.failure
    assert outcome.steps["Register"]["status"] == "NotRun"


def test_second_run_hits_the_cache_and_says_why(world):
    options, lines = world
    first = execute(options)
    second = execute(options)
    assert second.steps["Reconcile"]["status"] == "Cached"
    assert second.steps["Reconcile"]["reason"] == first.execution_id
    assert any("first run" in line for line in lines)
    lines.clear()
    third = execute(options, RawData="s3://fixtures/raw/d.jsonl")  # another argument: a re-run with the reason
    assert third.steps["Reconcile"]["status"] == "Succeeded"
    why = next(line for line in lines if "arguments changed since the last run" in line)
    assert "S3Input.S3Uri: 's3://fixtures/raw/' → 's3://fixtures/raw/d.jsonl'" in why  # which one, old → new
    options.use_cache = False
    assert execute(options).steps["Reconcile"]["status"] == "Succeeded"


def test_crashing_step_shows_exit_code_and_log_tail(world, tmp_path):
    options, lines = world
    shutil.rmtree(options.store.path("s3://fixtures/raw/"))
    write_jsonl(options.store.path("s3://fixtures/raw/d.jsonl"), [{"text": "", "label": "x"}])
    outcome = execute(options)
    assert outcome.status == "Failed"
    failed = outcome.steps["Reconcile"]
    assert failed["status"] == "Failed" and failed["exit_code"] == 2
    assert "no usable records" in failed["tail"]
    assert outcome.steps["Gate"]["status"] == "NotRun" and outcome.steps["Register"]["status"] == "NotRun"
    assert any("last lines of its log" in line for line in lines)


def test_missing_input_fails_before_running(world):
    options, _ = world
    outcome = execute(options, RawData="s3://fixtures/nothing-here/")
    assert outcome.status == "Failed" and "has no objects" in outcome.failure


def test_from_step_reruns_that_step_even_when_cached(world):
    options, lines = world
    execute(options)
    options.from_step = "Reconcile"
    outcome = execute(options)
    assert outcome.steps["Reconcile"]["status"] == "Succeeded"
    assert any("--from Reconcile" in line for line in lines)


def test_from_a_step_that_does_not_exist_is_an_error(world):
    """It used to be ignored, and every step was served from the cache."""
    from pipelines.local.expressions import ExpressionError

    options, _ = world
    options.from_step = "reconcile"
    with pytest.raises(ExpressionError, match=r"--from reconcile: the pipeline has no such step \(did you mean "
                                              r"Reconcile\?\); its steps: Gate, Reconcile"):
        execute(options)


def _twins(options, lines: list[str], parallel: int) -> list[str]:
    """Two independent Reconcile steps, uncached: the order in which they start and finish."""
    definition = json.loads((FIXTURES / "processing_condition.json").read_text())
    twin = json.loads(json.dumps(definition["Steps"][0]).replace('"reconciled"]', '"twin"]'))
    twin["Name"] = "ReconcileTwin"
    definition["Steps"].append(twin)
    options.parallel, options.use_cache = parallel, False
    outcome = Execution(definition, options, "fixture").run()
    assert outcome.status == "Succeeded" and outcome.steps["ReconcileTwin"]["status"] == "Succeeded"
    return [line.split(" (")[0].split(":")[0] for line in lines if line[:1] in "▶✓"
            and "Reconcile" in line]


def test_independent_steps_run_in_parallel(world):
    options, lines = world
    events = _twins(options, lines, parallel=2)
    assert events[:2] == ["▶ Reconcile", "▶ ReconcileTwin"], events  # both start before either finishes
    lines.clear()
    serial = _twins(options, lines, parallel=1)
    assert serial[1].startswith("✓"), serial  # the control: one at a time, each finishes before the next


def test_a_jobs_warnings_are_repeated_in_the_summary(world, tmp_path, capsys):
    from pipelines.local.summary import summarise, warnings

    options, _ = world
    (tmp_path / "warns").mkdir()
    (tmp_path / "warns" / "user_defined_funcs.py").write_text(
        "import sys\nfrom steps.core.defaults import reconcile_data as base\n\n"
        "def reconcile_data(raw_dir, text_column, label_column):\n"
        "    print('warning: tracking fell back to offline', file=sys.stderr)\n"
        "    yield from base(raw_dir, text_column, label_column)\n")
    options.store.put_bytes("s3://fixtures/code/bundle.tar.gz", bundle.build(ROOT, tmp_path / "warns"))
    outcome = execute(options)
    assert outcome.status == "Succeeded", outcome.failure
    assert warnings(outcome) == [("Reconcile", "tracking fell back to offline")]
    summarise(outcome, options)
    out = capsys.readouterr().out
    assert "warnings (from the jobs' logs)" in out and "Reconcile: tracking fell back to offline" in out


def test_a_failing_user_function_shows_its_traceback_and_keeps_its_log(world, tmp_path):
    options, lines = world
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "user_defined_funcs.py").write_text(
        "def reconcile_data(raw_dir, text_column, label_column):\n    raise ValueError('row 7 has no label column')\n")
    options.store.put_bytes("s3://fixtures/code/bundle.tar.gz", bundle.build(ROOT, tmp_path / "broken"))
    outcome = execute(options)
    assert outcome.status == "Failed" and outcome.steps["Reconcile"]["status"] == "Failed"
    assert "Reconcile exited with status 1: steps.reconcile exited with status 1" in outcome.failure
    terminal = "\n".join(lines)
    assert "ValueError: row 7 has no label column" in terminal and "user_defined_funcs.py" in terminal
    log = (outcome.folder / "logs" / "Reconcile.log").read_text()
    assert "Traceback (most recent call last)" in log and "row 7 has no label column" in log


def test_checkpoint_sync_never_names_an_epoch_the_store_lacks(tmp_path):
    from pipelines.local.training import CheckpointSync

    local, store = tmp_path / "ckpt", LocalStore(tmp_path / "store")
    (local / "epoch_1").mkdir(parents=True)
    (local / "epoch_1" / "model.safetensors").write_bytes(b"1" * 100)
    (local / "progress.json").write_text('{"epoch": 1}')
    (local / "epoch_2.tmp").mkdir()  # being written: not copied yet
    (local / "epoch_2.tmp" / "model.safetensors").write_bytes(b"2" * 50)
    sync = CheckpointSync(local, "s3://b/runs/x/checkpoints/m", store)
    sync.sync()
    remote = store.path("s3://b/runs/x/checkpoints/m")
    assert (remote / "epoch_1" / "model.safetensors").read_bytes() == b"1" * 100
    assert json.loads((remote / "progress.json").read_text()) == {"epoch": 1}
    assert not (remote / "epoch_2.tmp").exists()
    (local / "epoch_2.tmp").rename(local / "epoch_2")
    (local / "progress.json").write_text('{"epoch": 2}')
    with sync:  # the background thread plus a final copy on exit
        pass
    assert (remote / "epoch_2" / "model.safetensors").is_file()
    assert json.loads((remote / "progress.json").read_text()) == {"epoch": 2}
