"""The image entrypoint: the accelerate command it builds for one host, many GPUs, many hosts."""

from __future__ import annotations

import json

from steps import contract, launcher


def with_hosts(monkeypatch, tmp_path, hosts, current):
    monkeypatch.setenv(contract.OPT_ML_ENV, str(tmp_path))
    monkeypatch.delenv("SMPIPE_PROCESSES_PER_HOST", raising=False)
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "resourceconfig.json").write_text(json.dumps({"hosts": hosts, "current_host": current}))


def test_cpu_single_host_runs_one_plain_process(monkeypatch, tmp_path):
    with_hosts(monkeypatch, tmp_path, ["algo-1"], "algo-1")
    assert launcher.accelerate_command("steps.train", gpus=0)[1:] == ["-m", "steps.train"]


def test_all_gpus_of_all_hosts(monkeypatch, tmp_path):
    with_hosts(monkeypatch, tmp_path, ["algo-2", "algo-1"], "algo-2")
    cmd = launcher.accelerate_command("steps.train", gpus=8)
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
    first = bundle.folder_digest(tmp_path / "a")
    assert bundle.folder_digest(tmp_path / "a") == first
    (tmp_path / "a" / "x.txt").write_text("two")
    assert bundle.folder_digest(tmp_path / "a") != first
    (tmp_path / "a" / "x.txt").rename(tmp_path / "a" / "y.txt")  # the same bytes under another name
    assert bundle.folder_digest(tmp_path / "a") != first



def test_several_cpu_hosts_form_one_process_group(monkeypatch, tmp_path):
    """Two CPU hosts train one model: one launch over both (gloo), never accelerate's single-process launcher."""
    with_hosts(monkeypatch, tmp_path, ["algo-1", "algo-2"], "algo-2")
    cmd = launcher.accelerate_command("steps.train", gpus=0)
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert flags["--num_processes"] == "2" and flags["--num_machines"] == "2" and flags["--machine_rank"] == "1"
    assert "--cpu" not in cmd and "--multi_gpu" in cmd


DRIVERS = {"NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May  2 14:37:44 UTC 2024\n": "470.256.02",
           "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n": "570.86.15",
           "something else\n": "unknown"}


def test_the_driver_is_read_from_proc(tmp_path):
    for text, version in DRIVERS.items():
        (tmp_path / "version").write_text(text)
        assert launcher.nvidia_driver(str(tmp_path / "version")) == version
    assert launcher.nvidia_driver(str(tmp_path / "missing")) is None


def test_a_gpu_job_that_finds_no_gpu_fails_at_once_and_says_why(monkeypatch, tmp_path, capsys):
    with_hosts(monkeypatch, tmp_path, ["algo-1"], "algo-1")
    config = tmp_path / "input" / "config" / "resourceconfig.json"
    config.write_text(json.dumps({"hosts": ["algo-1"], "current_host": "algo-1", "current_instance_type": "ml.g5.xlarge"}))
    monkeypatch.setattr(launcher, "nvidia_driver", lambda: "470.256.02")
    monkeypatch.setattr(launcher, "torch_gpus", lambda: (0, "2.13.0+cu129", "12.9"))
    started = []
    monkeypatch.setattr(launcher, "run", lambda cmd, env: started.append(cmd) or 0)
    assert launcher.main(["train"]) == 3 and started == []  # nothing started: not an hour on the CPU
    message = (tmp_path / "output" / "failure").read_text()
    for part in ("ml.g5.xlarge", "470.256.02", "CUDA runtime 12.9", "older than 525.60"):
        assert part in message
    assert "error:" in capsys.readouterr().err
    monkeypatch.setattr(launcher, "nvidia_driver", lambda: None)  # a GPU type with no driver at all
    assert "no NVIDIA driver is loaded" in launcher.gpu_problem("ml.g5.xlarge", None, 0, "2.13", "12.9")
    assert launcher.gpu_problem("ml.g5.xlarge", "550.1", 4, "2.13", "12.9") == ""


def test_a_cpu_job_never_imports_torch_to_count_gpus(monkeypatch, tmp_path):
    with_hosts(monkeypatch, tmp_path, ["algo-1"], "algo-1")
    monkeypatch.setattr(launcher, "nvidia_driver", lambda: None)
    monkeypatch.setattr(launcher, "torch_gpus", lambda: (_ for _ in ()).throw(AssertionError("torch imported")))
    assert launcher.check_gpus("train") == 0 and launcher.check_gpus("prepare") == 0


def test_the_launchers_gpu_rule_agrees_with_the_instance_table():
    from pipelines.spec.gpu_runtime import NEURON_FAMILIES, family
    from pipelines.spec.instance_types import API_SHAPES, api_enum, is_gpu_instance

    types = {t for kind in API_SHAPES for t in api_enum(kind)}
    disagree = [t for t in types if family(t) not in NEURON_FAMILIES and launcher.is_gpu_instance(t) != is_gpu_instance(t)]
    assert disagree == [] and len(types) > 100
