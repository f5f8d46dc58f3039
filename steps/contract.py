"""The container contract: where every job finds its inputs and puts its outputs.

The compiler (pipelines/) and the step programs (steps/) both read these constants, so the paths a
definition mounts are the paths a program reads. Paths are written in their SageMaker form
(``/opt/ml/...``); ``local()`` maps them under ``$SMPIPE_OPT_ML`` when the local executor runs a job
in a sandbox instead of a container.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

OPT_ML = "/opt/ml"
OPT_ML_ENV = "SMPIPE_OPT_ML"

# Processing jobs: mounted inputs and uploaded outputs.
PROC_CODE = "/opt/ml/processing/input/code"
PROC_RAW = "/opt/ml/processing/input/raw"
PROC_RECONCILED = "/opt/ml/processing/input/reconciled"
PROC_PREPARED = "/opt/ml/processing/input/prepared"
PROC_PRETRAINED = "/opt/ml/processing/input/pretrained"  # /<model name>/
PROC_MODELS = "/opt/ml/processing/input/models"  # /<model name>/model.tar.gz
OUT_RECONCILED = "/opt/ml/processing/output/reconciled"
OUT_PREPARED = "/opt/ml/processing/output/prepared"
OUT_EVALUATION = "/opt/ml/processing/output/evaluation"
OUT_BEST_MODEL = "/opt/ml/processing/output/best-model"
# A processing step's offline wandb run, beside its outputs (no model is named so: a training channel is one
# model's folder of the prepared output, so the run never reaches a training job's input or cache key).
TRACKING_DIR = "_tracking"

# Training jobs: channels under /opt/ml/input/data/<channel>.
CHANNEL_CODE = "code"
CHANNEL_TRAIN = "train"
CHANNEL_PRETRAINED = "pretrained"
TRAIN_INPUT = "/opt/ml/input"
TRAIN_CONFIG = "/opt/ml/input/config"
TRAIN_MODEL_DIR = "/opt/ml/model"
TRAIN_OUTPUT_DATA = "/opt/ml/output/data"
TRAIN_CHECKPOINTS = "/opt/ml/checkpoints"
TRAIN_FAILURE_FILE = "/opt/ml/output/failure"  # a training job's FailureReason comes from here
PROC_FAILURE_FILE = "/opt/ml/output/message"  # a processing job's from here

# Where the launcher unpacks the code bundle before starting a program (never the working directory: the
# launcher empties it, and a process whose working directory was deleted cannot import transformers).
CODE_DIR = "/opt/ml/code"

# The image (containers/Dockerfile, which a test compares with these): its entrypoint, the working directory
# every job starts in, and its ENV lines (PYTHONPATH holds the launcher and this module).
IMAGE_ENTRYPOINT = ("python3", "-m", "steps.launcher")
IMAGE_WORKDIR = "/opt/smpipe"
IMAGE_ENV = {"USE_SMDEBUG": "0", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
             "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": IMAGE_WORKDIR}

# Every execution writes under <experiment prefix>/RUNS/<execution id>/ (pipelines/compile/builders/common.py);
# a processing job learns its execution id from its own output URIs there (steps/core/execution.py).
RUNS = "runs"

# How SageMaker starts the image for each kind of job: the arguments after the ENTRYPOINT, the variables
# it sets beside the job's own Environment, and the files it writes before the start. No SM_* variable is
# among them: those come from the SageMaker training toolkit, which this image does not run.
PROC_CONFIG = "/opt/ml/config"
JOB_STARTS = {
    "training": {"argv": ("train",), "env": ("TRAINING_JOB_NAME", "TRAINING_JOB_ARN"),
                 "files": ("/opt/ml/input/config/hyperparameters.json", "/opt/ml/input/config/resourceconfig.json",
                           "/opt/ml/input/config/inputdataconfig.json")},
    "processing": {"argv": ("<AppSpecification.ContainerArguments>",), "env": (),
                   "files": (f"{PROC_CONFIG}/processingjobconfig.json", f"{PROC_CONFIG}/resourceconfig.json")},
    "hosting": {"argv": ("serve",), "env": (), "files": ()},
    "transform": {"argv": ("serve",), "env": ("SAGEMAKER_BATCH", "SAGEMAKER_MAX_PAYLOAD_IN_MB",
                                              "SAGEMAKER_BATCH_STRATEGY", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"),
                  "files": ()},
}

# Output names used in definitions (ProcessingOutput.OutputName) and PropertyFiles.
OUTPUT_RECONCILED = "reconciled"
OUTPUT_PREPARED = "prepared"
OUTPUT_EVALUATION = "evaluation"
OUTPUT_BEST_MODEL = "best-model"
EVALUATION_FILE = "evaluation.json"
BEST_MODEL_FILE = "model.tar.gz"

# Hyperparameter keys the launcher consumes itself (never passed to the program as flags).
HP_PROGRAM = "smpipe_program"
HP_CODE_BUNDLE = "smpipe_code_bundle"

# Metric lines: the training program prints them, metric_definitions parse them.
METRIC_LINE = "#metric {name}={value:.6f};"
TRAINING_METRICS = (
    "train:loss",
    "validation:loss",
    "validation:accuracy",
    "validation:macro_f1",
    "validation:weighted_f1",
    "train:samples_per_second",
)
# Steady-state training speed (printed when an epoch is longer than the warm-up; MFU on known GPUs).
THROUGHPUT_METRICS = ("train:tokens_per_second", "train:mfu")
EVALUATION_METRICS = ("test:accuracy", "test:macro_f1", "test:weighted_f1")


def metric_line(name: str, value: float) -> str:
    """The one line format for a metric; ``metric_regex(name)`` parses it."""
    return METRIC_LINE.format(name=name, value=float(value))


def metric_regex(name: str) -> str:
    return "#metric " + re.escape(name) + r"=([-+0-9.eE]+);"


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": name, "Regex": metric_regex(name)} for name in TRAINING_METRICS + THROUGHPUT_METRICS]


def root() -> Path:
    """The /opt/ml root for this process (overridable so jobs can run outside a container)."""
    return Path(os.environ.get(OPT_ML_ENV, OPT_ML))


def local(path: str) -> Path:
    """Map a contract path (``/opt/ml/...``) onto this process's root."""
    if path == OPT_ML or path.startswith(OPT_ML + "/"):
        return root() / path[len(OPT_ML) + 1 :]
    return Path(path)


def channel_dir(channel: str) -> Path:
    env = os.environ.get(f"SM_CHANNEL_{channel.upper()}")
    return Path(env) if env else local(f"{TRAIN_INPUT}/data/{channel}")


def model_dir() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR") or local(TRAIN_MODEL_DIR))


def output_data_dir() -> Path:
    return Path(os.environ.get("SM_OUTPUT_DATA_DIR") or local(TRAIN_OUTPUT_DATA))


def checkpoint_dir() -> Path:
    return Path(os.environ.get("SMPIPE_CHECKPOINT_DIR") or local(TRAIN_CHECKPOINTS))


def read_json(path: Path, default: dict | None = None) -> dict:
    if not path.exists():
        return {} if default is None else default
    return json.loads(path.read_text(encoding="utf-8"))


def hyperparameters() -> dict[str, str]:
    """SageMaker writes hyperparameters as a JSON map of strings."""
    return read_json(local(f"{TRAIN_CONFIG}/hyperparameters.json"))


def resource_config() -> dict:
    """hosts, current_host, current_instance_type: a training job's file, else a processing job's, else one host."""
    for folder in (TRAIN_CONFIG, PROC_CONFIG):
        cfg = read_json(local(f"{folder}/resourceconfig.json"))
        if cfg:
            return cfg
    return {"current_host": "algo-1", "hosts": ["algo-1"]}


def instance_type() -> str:
    """The instance this job runs on: the resource config's, a processing job's config, else what the model's
    environment says (SageMaker tells a serving container nothing about its instance)."""
    found = resource_config().get("current_instance_type")
    if not found:
        cluster = read_json(local(f"{PROC_CONFIG}/processingjobconfig.json")).get("ProcessingResources", {})
        found = cluster.get("ClusterConfig", {}).get("InstanceType")
    return found or os.environ.get("SMPIPE_INSTANCE_TYPE", "")
