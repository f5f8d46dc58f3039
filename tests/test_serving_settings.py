"""The serving program's numeric settings are checked before anything starts (steps/serving/settings.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from steps.core.common import StepError
from steps.serving import settings


def test_valid_unset_and_empty_settings_pass():
    settings.check({})
    settings.check({"SMPIPE_SERVE_WORKERS": "6", "SMPIPE_SERVE_MAX_TEXTS": "0", "SMPIPE_SERVE_MAX_WAIT": "0.002",
                    "SMPIPE_MAX_BODY_MB": "6", "SAGEMAKER_BIND_TO_PORT": "8080", "SMPIPE_SERVE_TOKENS": ""})


@pytest.mark.parametrize(("name", "value", "says"), [
    ("SMPIPE_SERVE_WORKERS", "two", "a whole number >= 1"),
    ("SMPIPE_SERVE_WORKERS", "0", "a whole number >= 1"),
    ("SMPIPE_SERVE_TOKENS", "4096.5", "a whole number >= 1"),
    ("SMPIPE_SERVE_MAX_TEXTS", "-1", "a whole number >= 0"),
    ("SMPIPE_SERVE_MAX_WAIT", "soon", "a number >= 0"),
    ("SMPIPE_MAX_BODY_MB", "nan", "a number >= 0"),
    ("SAGEMAKER_BIND_TO_PORT", "http", "a whole number >= 1"),
])
def test_a_bad_setting_names_the_variable_its_value_and_what_it_takes(name, value, says):
    with pytest.raises(StepError, match=f"{name}='{value}' is not {says} .*unset it or fix its value"):
        settings.check({"SMPIPE_SERVE_WORKERS": "2", name: value})


def test_the_server_refuses_a_bad_setting_in_one_line_before_it_starts(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SMPIPE_SERVE_WORKERS": "many", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "steps.serve", "--model-dir", str(tmp_path / "none")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: SMPIPE_SERVE_WORKERS='many' is not a whole number >= 1 (serving processes): "
                                   "unset it or fix its value")
    assert "serving" not in done.stdout  # nothing started
