"""Changed inputs are never served from the cache, unchanged ones are: every byte of every local input is
hashed, every local folder is content-addressed through one staging path, a mutable s3:// prefix is listed
at start, the bundle refuses what it cannot carry, and each step's code identity is what it runs."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import ROOT
from tiny import make_texts, write_jsonl

from pipelines.compile import bundle, staging
from pipelines.compile.definition import definition
from pipelines.compile.plan import plan
from pipelines.compile.snapshot import data_snapshot
from pipelines.local.executor import Execution, Options
from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.store.local import LocalStore

SPEC = """\
name: EXP-0042-minimal
data: {{source: {data}}}
models:
  - {{name: a, source: {model_a}}}
  - {{name: b, source: {model_b}{extra}}}
register: {{group: minimal-group}}
"""


@pytest.fixture
def project(write_spec, tmp_path):
    shutil.rmtree(tmp_path / "steps", ignore_errors=True)
    shutil.copytree(ROOT / "steps", tmp_path / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("raw", "model-a", "model-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.bin").write_bytes(name.encode() * 100)

    def write(extra: str = "", udf: str | None = None):
        return write_spec(SPEC.format(data=tmp_path / "raw", model_a=tmp_path / "model-a",
                                      model_b=tmp_path / "model-b", extra=extra), udf)

    return write


def steps_of(spec_path) -> dict[str, dict]:
    steps = json.loads(definition(plan(load(spec_path))))["Steps"]
    return {s["Name"]: s["Arguments"] for s in steps}


def test_a_byte_in_the_middle_of_a_large_file_changes_the_address(tmp_path):
    """The old digest read a 16 MB file's first and last 4 MiB only: a corrected label in between went unseen."""
    data = bytearray(os.urandom(16 * 2**20))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big.csv").write_bytes(bytes(data))
    cache = bundle.DigestCache(tmp_path / "digests.json")
    first = bundle.folder_digest(tmp_path / "d", cache)
    cache.save()
    data[8 * 2**20] ^= 1
    (tmp_path / "d" / "big.csv").write_bytes(bytes(data))
    assert bundle.folder_digest(tmp_path / "d", bundle.DigestCache(tmp_path / "digests.json")) != first
    assert bundle.folder_digest(tmp_path / "d") != first  # and without the remembered digests


def test_replaced_weights_change_the_pretrained_uri_and_the_train_key(project, tmp_path):
    path = project()
    before = steps_of(path)
    (tmp_path / "model-a" / "weights.bin").write_bytes(b"retrained" * 100)
    after = steps_of(path)
    assert after["Train-a"] != before["Train-a"] and after["Train-b"] == before["Train-b"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in after["Train-a"]["InputDataConfig"]}
    assert "/assets/pretrained/a/" in channels["pretrained"] and channels["pretrained"].count("/") > 7


def test_one_staging_path_puts_only_what_is_missing(project, tmp_path):
    the_plan = plan(load(project()))
    objects = dict(staging.objects(the_plan))
    uris = set(objects)
    assert set(the_plan.code_uris.values()) <= uris
    assert any(u.endswith("/weights.bin") and "/assets/pretrained/b/" in u for u in uris)
    store = LocalStore(tmp_path / "store")
    from pipelines.local.run import stage

    options = Options(store=store, runs=tmp_path / "runs", registry=tmp_path / "reg", code_root=ROOT)
    assert stage(the_plan, options) == len(objects)
    assert stage(the_plan, options) == 0  # a second stage sends nothing


def test_a_hyperparameter_edit_retrains_only_that_model(project):
    before = steps_of(project())
    after = steps_of(project(extra=", hyperparameters: {learning_rate: 0.0003}"))
    assert after["Reconcile"] == before["Reconcile"] and after["Prepare"] == before["Prepare"]
    assert after["Train-a"] == before["Train-a"] and after["Train-b"] != before["Train-b"]
    assert after["Evaluate"] == before["Evaluate"]  # its inputs are Train's properties: resolved at run time


def test_a_user_function_edit_reruns_the_steps_that_call_it(project):
    base = "def load_model(source, labels, init):\n    return {}\n\ndef encode_data(batch, tokenizer, model):\n" \
           "    return tokenizer(batch['text'], truncation=True)\n"
    before = steps_of(project(udf=base))
    after = steps_of(project(udf=base.replace("return {}", "return {'edited': 1}")))
    assert after["Reconcile"] == before["Reconcile"] and after["Prepare"] == before["Prepare"]
    assert after["Train-a"] != before["Train-a"] and after["Train-b"] != before["Train-b"]
    encode = steps_of(project(udf=base.replace("truncation=True", "truncation=True, max_length=64")))
    assert encode["Reconcile"] == before["Reconcile"] and encode["Prepare"] != before["Prepare"]


def test_a_module_under_data_is_kept_and_a_large_file_is_refused(project, tmp_path):
    path = project()
    (path.parent / "data").mkdir()
    (path.parent / "data" / "helpers.py").write_text("X = 1\n")
    names = [n for n, _ in bundle.files(ROOT, path.parent, ())]
    assert "experiment/data/helpers.py" in names and "experiment/experiment.yaml" not in names
    (path.parent / "lookup.bin").write_bytes(b"0" * (bundle.MAX_FILE_BYTES + 1))
    with pytest.raises(SpecError) as info:
        plan(load(path))
    assert str(path.parent / "lookup.bin") in str(info.value) and "name it in the spec" in str(info.value)


def reconcile_only(the_plan) -> dict:
    defn = json.loads(definition(the_plan))
    defn["Steps"] = [s for s in defn["Steps"] if s["Name"] == "Reconcile"]
    return defn


def test_a_mutable_s3_prefix_is_read_again_when_its_objects_change(write_spec, tmp_path):
    """The weekly schedule's `latest/` prefix: same objects, cached; a new object, Reconcile runs again."""
    store = LocalStore(tmp_path / "store")
    write_jsonl(store.path("s3://acme-raw/latest/part-0.jsonl"), make_texts(5))
    the_plan = plan(load(write_spec(SPEC.format(data="s3://acme-raw/latest/", model_a="s3://models-x/a/",
                                                model_b="s3://models-x/b/", extra=""))))
    for uri, source in staging.objects(the_plan):
        store.put_bytes(uri, staging.content(source))
    lines: list[str] = []

    def run() -> str:
        values, _ = data_snapshot(the_plan, {}, store.listing)
        options = Options(store=store, runs=tmp_path / "runs", registry=tmp_path / "reg", code_root=ROOT,
                          parameters=values, say=lines.append)
        return Execution(reconcile_only(the_plan), options, "p").run().steps["Reconcile"]["status"]

    assert run() == "Succeeded" and run() == "Cached"
    write_jsonl(store.path("s3://acme-raw/latest/part-1.jsonl"), make_texts(3, seed=9))
    lines.clear()
    assert run() == "Succeeded"
    assert any("--data-snapshot" in line or "ContainerArguments" in line for line in lines)
    shutil.rmtree(store.path("s3://acme-raw/latest/"))
    store.path("s3://acme-raw/latest/").mkdir(parents=True)
    with pytest.raises(SpecError, match="holds no objects"):
        data_snapshot(the_plan, {}, store.listing)
