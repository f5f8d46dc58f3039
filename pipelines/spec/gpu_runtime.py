"""Which instances the job image can compute on, and the NVIDIA driver each kind of SageMaker job gets.

One table, checked by tests against botocore's own documentation of the AMI versions, the Dockerfile's torch
index, the launcher's minimum driver and the API's instance-type enums. Facts and their sources:

- The image's torch is 2.13.0+cu129 (PyTorch's CUDA 12.9 index; PyPI's build is CUDA 13.0, which needs driver
  R580, offered to endpoints only by one AMI and to batch transform by none).
- CUDA 12.x minor-version compatibility: a 12.x runtime runs on any driver from 525.60.13 on, for kernels
  compiled for the GPU (no PTX JIT), which the cu129 build carries for Turing through Blackwell.
- Batch transform offers drivers 470 and 535 (TransformAmiVersion); endpoints 535, 550 and 580
  (InferenceAmiVersion). Without an AMI version, g4dn/g5/p4d endpoints and transforms get 470: too old.
- Training hosts' drivers are not documented per family: the launcher reads the driver at start and fails
  the job at once, naming it, when it is older than 525.60 (never a silent run on the CPU).
"""

from __future__ import annotations

IMAGE_CUDA = "12.9"
TORCH_INDEX = "https://download.pytorch.org/whl/cu129"
MIN_DRIVER = (525, 60)

# Compute capability of each NVIDIA family SageMaker offers, and the CPU architecture where it is not x86.
FAMILY_ARCH = {"p2": 3.7, "p3": 7.0, "p3dn": 7.0, "g4dn": 7.5, "g5g": 7.5, "p4d": 8.0, "p4de": 8.0, "g5": 8.6,
               "g6": 8.9, "g6e": 8.9, "gr6": 8.9, "p5": 9.0, "p5e": 9.0, "p5en": 9.0, "p6-b200": 10.0,
               "p6-b300": 10.3, "p6e-gb200": 10.0, "g7": 12.0, "g7e": 12.0}
ARM_FAMILIES = frozenset({"g5g", "p6e-gb200"})
# Families with no NVIDIA GPU that an accelerator image would need: the job image has no Neuron SDK.
NEURON_FAMILIES = frozenset({"inf1", "inf2", "trn1", "trn1n", "trn2"})
# The GPU generations whose kernels the cu129 build carries (SASS for X.y runs on X.z, z >= y).
BUILD_ARCHS = (7.5, 8.0, 8.6, 9.0, 10.0, 12.0)

# The AMI versions the definition and `make deploy` set on GPU instances, and the drivers they carry.
TRANSFORM_AMI = "al2-ami-sagemaker-batch-gpu-535"
INFERENCE_AMI = "al2-ami-sagemaker-inference-gpu-3-1"
INFERENCE_AMI_BLACKWELL = "al2023-ami-sagemaker-inference-gpu-4-1"
AMI_DRIVERS = {"al2-ami-sagemaker-batch-gpu-470": 470, "al2-ami-sagemaker-batch-gpu-535": 535,
               "al2-ami-sagemaker-inference-gpu-2": 535, "al2-ami-sagemaker-inference-gpu-2-1": 535,
               "al2-ami-sagemaker-inference-gpu-3-1": 550, "al2023-ami-sagemaker-inference-gpu-4-1": 580}


def family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 else ""


def runs_kernels(arch: float) -> bool:
    """Whether the build carries kernels this GPU can run: same major generation, not newer than the GPU."""
    return any(int(built) == int(arch) and built <= arch + 1e-9 for built in BUILD_ARCHS)


def image_problem(instance_type: str) -> str:
    """Why the job image cannot compute on this instance type; empty when it can."""
    fam = family(instance_type)
    if fam in NEURON_FAMILIES:
        return (f"{instance_type} has AWS Neuron accelerators, which the job image cannot use (it has no Neuron "
                "SDK): the job would run on the CPU")
    if fam in ARM_FAMILIES:
        return f"{instance_type} has Arm (Graviton/Grace) CPUs; the job image is built for x86_64 (linux/amd64)"
    arch = FAMILY_ARCH.get(fam)
    if arch is not None and not runs_kernels(arch):
        return (f"{instance_type}'s GPUs (compute capability {arch}) have no kernels in the image's torch "
                f"(CUDA {IMAGE_CUDA} build, Turing and newer): the job would fail or run on the CPU")
    return ""


def inference_ami(instance_type: str) -> str | None:
    """The InferenceAmiVersion an endpoint on this instance type needs (None on a CPU instance)."""
    arch = FAMILY_ARCH.get(family(instance_type))
    if arch is None:
        return None
    return INFERENCE_AMI_BLACKWELL if arch >= 10 else INFERENCE_AMI


def transform_ami(instance_type: str) -> str | None:
    return TRANSFORM_AMI if family(instance_type) in FAMILY_ARCH else None
