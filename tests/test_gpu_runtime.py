"""The image's CUDA runtime against the drivers SageMaker gives each kind of job: the table in
pipelines/spec/gpu_runtime.py checked against botocore's documentation, the Dockerfile, the launcher and the
definitions (an AMI version on every GPU transform), and instance families it does not know yet."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

from pipelines.compile.definition import definition
from pipelines.compile.plan import plan
from pipelines.spec import gpu_runtime
from pipelines.spec.instance_types import API_SHAPES, api_enum
from pipelines.spec.load import load
from steps import launcher


def documented_drivers() -> dict[str, int]:
    """AMI version → NVIDIA driver, as botocore's SageMaker model documents them."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    docs = model.shape_for("TransformResources").members["TransformAmiVersion"].documentation
    docs += model.shape_for("ProductionVariant").members["InferenceAmiVersion"].documentation
    return {name: int(driver) for name, driver in
            re.findall(r"<dt>([\w-]+)</dt>\s*<dd>.*?NVIDIA driver version: (\d+)", docs, re.S)}


def test_the_ami_table_is_botocores():
    assert gpu_runtime.AMI_DRIVERS == documented_drivers()


@pytest.mark.parametrize("ami", [gpu_runtime.TRANSFORM_AMI, gpu_runtime.INFERENCE_AMI,
                                 gpu_runtime.INFERENCE_AMI_BLACKWELL])
def test_every_ami_we_set_runs_the_images_cuda(ami):
    assert documented_drivers()[ami] >= gpu_runtime.MIN_DRIVER[0]


def test_the_defaults_without_an_ami_would_not():
    """Batch transform's other AMI (and the default of g4dn/g5/p4d endpoints) carries driver 470."""
    assert documented_drivers()["al2-ami-sagemaker-batch-gpu-470"] < gpu_runtime.MIN_DRIVER[0]


def test_the_image_and_the_launcher_agree_with_the_table():
    dockerfile = (ROOT / "containers" / "Dockerfile").read_text()
    assert f"--index-url {gpu_runtime.TORCH_INDEX}" in dockerfile
    assert gpu_runtime.TORCH_INDEX.endswith("cu" + gpu_runtime.IMAGE_CUDA.replace(".", ""))
    assert launcher.MIN_DRIVER == gpu_runtime.MIN_DRIVER


def test_every_nvidia_family_sagemaker_offers_is_in_the_table():
    """A new family (say ml.g8) fails here until its GPU generation is written down."""
    families = {gpu_runtime.family(t) for kind in API_SHAPES for t in api_enum(kind)}
    nvidia = {f for f in families if f[:1] in ("g", "p")}
    assert nvidia - set(gpu_runtime.FAMILY_ARCH) == set()


@pytest.mark.parametrize(("instance_type", "refused"), [
    ("ml.g4dn.xlarge", False), ("ml.g5.2xlarge", False), ("ml.g6e.xlarge", False), ("ml.p4d.24xlarge", False),
    ("ml.p5.48xlarge", False), ("ml.p6-b200.48xlarge", False), ("ml.p6-b300.48xlarge", False),
    ("ml.g7e.2xlarge", False), ("ml.m5.xlarge", False), ("local", False),
    ("ml.p2.xlarge", True), ("ml.p3.2xlarge", True), ("ml.p3dn.24xlarge", True), ("ml.p6e-gb200.36xlarge", True),
    ("ml.trn1.2xlarge", True), ("ml.inf2.xlarge", True)])
def test_which_instances_the_image_can_compute_on(instance_type, refused):
    assert bool(gpu_runtime.image_problem(instance_type)) is refused


def test_studio_offers_no_instance_the_image_cannot_use():
    the_plan = plan(load(ROOT / "experiments" / "EXP-0001-docstring-topics" / "experiment.yaml"))
    offered = the_plan.parameters["TrainInstanceType"].enum
    assert "ml.g5.2xlarge" in offered and "ml.p3.2xlarge" not in offered and "ml.trn1.2xlarge" not in offered


def transform_step(overrides: list[str]) -> dict:
    spec = load(ROOT / "experiments" / "EXP-0001-docstring-topics" / "experiment.yaml", overrides)
    steps = json.loads(definition(plan(spec)))["Steps"]
    flat = [s for step in steps for s in [step, *step["Arguments"].get("IfSteps", [])]]
    return next(s for s in flat if s["Type"] == "Transform")["Arguments"]


def test_a_gpu_transform_names_its_ami_and_a_cpu_one_none():
    gpu = transform_step(["resources.transform.instance_type=ml.g5.xlarge"])
    assert gpu["TransformResources"]["TransformAmiVersion"] == gpu_runtime.TRANSFORM_AMI
    assert gpu["Environment"]["SMPIPE_INSTANCE_TYPE"] == "ml.g5.xlarge"  # the launcher's GPU check reads it
    assert "TransformAmiVersion" not in transform_step([])["TransformResources"]
