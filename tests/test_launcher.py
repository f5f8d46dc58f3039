"""The image entrypoint: the accelerate command it builds for one host, many GPUs, many hosts."""

from __future__ import annotations

import json

from steps import contract, launcher


def with_hosts(monkeypatch, tmp_path, hosts, current, gpus):
    monkeypatch.setenv(contract.OPT_ML_ENV, str(tmp_path))
    monkeypatch.setenv("SM_NUM_GPUS", str(gpus))
    monkeypatch.delenv("SMPIPE_PROCESSES_PER_HOST", raising=False)
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "resourceconfig.json").write_text(json.dumps({"hosts": hosts, "current_host": current}))


def test_cpu_single_host_runs_one_plain_process(monkeypatch, tmp_path):
    with_hosts(monkeypatch, tmp_path, ["algo-1"], "algo-1", 0)
    assert launcher.accelerate_command("steps.train")[1:] == ["-m", "steps.train"]


def test_all_gpus_of_all_hosts(monkeypatch, tmp_path):
    with_hosts(monkeypatch, tmp_path, ["algo-2", "algo-1"], "algo-2", 8)
    cmd = launcher.accelerate_command("steps.train")
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert flags["--num_processes"] == "16" and flags["--num_machines"] == "2"
    assert flags["--machine_rank"] == "1" and flags["--main_process_ip"] == "algo-1"
    assert "--multi_gpu" in cmd and cmd[-2:] == ["-m", "steps.train"]
    assert launcher.is_main_host() is False


def test_unpack_code_bundle(monkeypatch, tmp_path):
    from conftest import ROOT

    from pipelines.compile import bundle

    monkeypatch.setenv(contract.OPT_ML_ENV, str(tmp_path / "opt_ml"))
    source = tmp_path / "code"
    source.mkdir()
    (source / "abc.tar.gz").write_bytes(bundle.build(ROOT, ROOT / "experiments" / "EXP-0001-docstring-topics"))
    code = launcher.unpack_code(source)
    assert (code / "steps" / "train.py").is_file()
    assert (code / "experiment" / "user_defined_funcs.py").is_file()
    assert launcher.program_env(code)["SMPIPE_EXPERIMENT_DIR"] == str(code / "experiment")


def test_bundle_is_byte_reproducible():
    from conftest import ROOT

    from pipelines.compile import bundle

    exp = ROOT / "experiments" / "EXP-0001-docstring-topics"
    assert bundle.build(ROOT, exp) == bundle.build(ROOT, exp)
    names = [name for name, _ in bundle.files(ROOT, exp)]
    assert "steps/contract.py" in names and not any("__pycache__" in n for n in names)


def test_failure_reason_goes_where_each_job_kind_reads_it(monkeypatch, tmp_path):
    """Processing jobs report /opt/ml/output/message, training jobs /opt/ml/output/failure."""
    monkeypatch.setenv(contract.OPT_ML_ENV, str(tmp_path))
    rc = launcher.main(["prepare", "--model", "broken"])  # not NAME:MAX_LENGTH:...: exits 2
    assert rc == 2
    assert (tmp_path / "output" / "message").read_text() == "steps.prepare exited with status 2"
    assert not (tmp_path / "output" / "failure").exists()
    launcher.write_failure("boom", "train")
    assert (tmp_path / "output" / "failure").read_text() == "boom"


def test_folder_digest_is_a_content_address(tmp_path):
    from pipelines.compile import bundle

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("one")
    (tmp_path / "a" / "big.bin").write_bytes(b"\0" * (bundle.WHOLE_FILE_BYTES + 10))
    first = bundle.folder_digest(tmp_path / "a")
    assert bundle.folder_digest(tmp_path / "a") == first
    (tmp_path / "a" / "x.txt").write_text("two")
    second = bundle.folder_digest(tmp_path / "a")
    assert second != first
    data = bytearray(b"\0" * (bundle.WHOLE_FILE_BYTES + 10))
    data[-1] = 1  # the tail of a large file is read
    (tmp_path / "a" / "big.bin").write_bytes(bytes(data))
    assert bundle.folder_digest(tmp_path / "a") != second
