"""The newcomer's path through the Makefile targets with their defaults, in a fresh-clone layout (the tracked
files only, relative paths): `make local` of a tiny experiment, `make serve`, `make invoke` over a real
socket, with text that needs quoting and a file of texts. Nothing is given beyond exp= and port= (and
keep= to prune a second run with `make clean-runs`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from conftest import ROOT
from serving import free_port
from tiny import TOPICS, make_model, make_texts, write_jsonl

pytestmark = pytest.mark.slow
NAME = "EXP-0900-newcomer"
SPEC = f"""\
name: {NAME}
base: templates/text-classification.yaml
data: {{source: experiments/{NAME}/raw}}
models:
  - {{name: tiny, source: models/tiny, max_length: 32}}
resources: {{training: {{instance_type: local}}, processing: {{instance_type: local}}, evaluation: {{instance_type: local}},
            transform: {{instance_type: local}}}}
train: {{hyperparameters: {{epochs: 1, batch_size: 16, precision: fp32}}}}
gate: {{threshold: 0.0}}
register: {{group: newcomer-group}}
"""


def fresh_clone(tmp_path):
    """The files git knows (tracked or new, not ignored), mtimes kept, with this checkout's venv: what a clone
    plus `make venv` gives, without installing it again."""
    clone = tmp_path / "clone"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, clone / rel)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    model = clone / ".models" / "all-MiniLM-L6-v2"  # `make local` runs `make model`: the example's, not needed here
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    return clone


def make(clone, *args, timeout=600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=clone, capture_output=True, text=True,
                          timeout=timeout, env=env)


def prune_the_first_of_two_runs(clone):
    """A second run (nothing cached), then `make clean-runs keep=1`: the first run goes, its registered model
    stays in the store, and the latest version is what `make serve` then serves."""
    again = make(clone, "local", f"exp={NAME}", "args=--no-cache")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    first, second = sorted((clone / ".local-runs").glob("local-*"))
    assert make(clone, "clean-runs").returncode == 2  # keep= is required: nothing is deleted by default
    pruned = make(clone, "clean-runs", "keep=1")
    assert pruned.returncode == 0 and f"deleted {first.name} ({NAME}" in pruned.stdout, pruned.stdout + pruned.stderr
    assert not first.exists() and second.exists()
    v1 = json.loads((clone / ".local-runs" / "registry" / "newcomer-group" / "1.json").read_text())["ModelDataUrl"]
    assert (clone / ".local-s3" / v1[len("s3://"):]).is_file()


def test_local_then_serve_then_invoke_with_defaults(tmp_path):
    clone = fresh_clone(tmp_path)
    rows = make_texts(30)
    make_model(clone / "models" / "tiny", [r["text"] for r in rows])
    write_jsonl(clone / "experiments" / NAME / "raw" / "data.jsonl", rows)
    (clone / "experiments" / NAME / "experiment.yaml").write_text(SPEC, encoding="utf-8")
    local = make(clone, "local", f"exp={NAME}")
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    assert re.search(r"^disk: this execution [0-9.,]+ [KMG]?B \(logs and job sandboxes .*1 local execution\(s\)",
                     local.stdout, re.M), local.stdout[-2000:]
    prune_the_first_of_two_runs(clone)

    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "serve", f"exp={NAME}", f"port={port}"], cwd=clone,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        texts = clone / "texts.txt"
        texts.write_text("the rocket reached orbit\n\nbake the bread with butter\n", encoding="utf-8")
        deadline = time.monotonic() + 120
        while True:
            by_file = make(clone, "invoke", f"exp={NAME}", f"port={port}", "file=texts.txt", timeout=120)
            if by_file.returncode == 0 or time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(1)
        assert by_file.returncode == 0, by_file.stdout + by_file.stderr + (server.stdout.read() if server.poll() else "")
        lines = by_file.stdout.splitlines()
        assert len(lines) == 2 and all(line.split()[0] in TOPICS for line in lines), lines
        quoted = 'she said "score $HOME it\'s" (a, b) `nothing` ; exit 1'
        by_text = make(clone, "invoke", f"exp={NAME}", f"port={port}", f"text={quoted}", timeout=120)
        assert by_text.returncode == 0 and by_text.stdout.split()[0] in TOPICS, by_text.stdout + by_text.stderr
        assert quoted[:60] in by_text.stdout  # the text arrived as written: no shell expanded any of it
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
