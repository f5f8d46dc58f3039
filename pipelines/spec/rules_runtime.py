"""Rules on what the job image can run: instance types it cannot compute on, and the limits SageMaker puts on
endpoints and batch transforms that the spec could otherwise cross (see gpu_runtime.py for the facts)."""

from __future__ import annotations

from pipelines.spec.experiment import Experiment
from pipelines.spec.gpu_runtime import image_problem

MAX_TRANSFORM_MB = 100  # botocore: MaxPayloadInMB × MaxConcurrentTransforms must not exceed 100 MB


def check(spec: Experiment, add) -> None:
    _instances(spec, add)
    _deploy(spec, add)
    _transform(spec, add)


def instance_fields(spec: Experiment) -> list[tuple[tuple, str]]:
    """Every instance type of the spec that runs the job image, with where it is written."""
    res = spec.resources
    out = [(("resources", step, "instance_type"), getattr(res, step).instance_type)
           for step in ("processing", "training", "evaluation", "transform")]
    out.append((("deploy", "instance_type"), spec.deploy.instance_type))
    out += [(("register", "inference_instances", i), t) for i, t in enumerate(spec.register.inference_instances)]
    return out


def _instances(spec: Experiment, add) -> None:
    for loc, instance_type in instance_fields(spec):
        problem = image_problem(instance_type)
        if problem:
            add(loc, problem, "choose an NVIDIA instance of the Turing generation or newer (ml.g4dn, ml.g5, ml.g6, "
                "ml.p4d, ml.p5 …) or a CPU instance")


def _deploy(spec: Experiment, add) -> None:
    deploy = spec.deploy
    if not deploy.serverless:
        return
    for field in ("instance_type", "instance_count"):
        if field in deploy.model_fields_set:
            add(("deploy", field), f"a serverless endpoint has no instances, so deploy.{field} would be ignored",
                "remove it, or remove deploy.serverless to deploy to instances")
    if spec.aws.kms_key and not deploy.serverless.without_kms_key:
        add(("deploy", "serverless"), "a serverless endpoint has no storage volume for aws.kms_key to encrypt, so "
            "the key would not apply to it", "deploy to instances (remove deploy.serverless), or set "
            "deploy.serverless.without_kms_key: true to accept it")
    if spec.aws.network_isolation:
        add(("deploy", "serverless"), "a serverless endpoint cannot run a model with network isolation, and "
            "aws.network_isolation: true asks for it", "deploy to instances (remove deploy.serverless)")
    if spec.aws.subnets:
        add(("deploy", "serverless"), "a serverless endpoint cannot run in a VPC (SageMaker refuses a model with "
            "VpcConfig behind one), and aws.subnets puts the model in one", "deploy to an instance "
            "(deploy.instance_type, no serverless:), or drop aws.subnets and aws.security_groups")


def _transform(spec: Experiment, add) -> None:
    transform = spec.transform
    if transform and transform.max_payload_mb * transform.max_concurrent_transforms > MAX_TRANSFORM_MB:
        add(("transform", "max_payload_mb"), f"max_payload_mb × max_concurrent_transforms = "
            f"{transform.max_payload_mb} × {transform.max_concurrent_transforms} exceeds the {MAX_TRANSFORM_MB} MB "
            "SageMaker allows a transform", "lower one of them")
