"""What the spec and the compiler need to know about SageMaker instance types, in one table each.

Pure: the API's own enums are read from botocore's bundled service model (a local file).
"""

from __future__ import annotations

import functools

from pipelines.spec.gpu_runtime import FAMILY_ARCH, NEURON_FAMILIES, family

# GPU (and Trainium/Inferentia accelerator) families that SageMaker offers; everything else is CPU-only.
GPU_FAMILIES = frozenset(FAMILY_ARCH) | NEURON_FAMILIES

# Families whose instances carry NVMe instance-store volumes. SageMaker refuses VolumeKmsKeyId on them
# ("You can't request a VolumeKmsKeyId when using an instance type with local storage"): the instance
# encrypts that storage in hardware. Maintained from the EC2 instance-store table; review on new families.
LOCAL_STORAGE_FAMILIES = frozenset({"c5d", "c6id", "g4dn", "g5", "g6", "g6e", "gr6", "m5d", "m6id", "p3dn", "p4d",
                                    "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300", "p6e-gb200", "r5d", "r6id",
                                    "trn1", "trn1n", "trn2"})

# Which API enum an instance-type pipeline parameter must belong to.
API_SHAPES = {"training": "TrainingInstanceType", "processing": "ProcessingInstanceType",
              "hosting": "ProductionVariantInstanceType", "transform": "TransformInstanceType"}


def is_gpu_instance(instance_type: str) -> bool:
    return instance_type == "local_gpu" or family(instance_type) in GPU_FAMILIES


def has_local_storage(instance_type: str) -> bool:
    return family(instance_type) in LOCAL_STORAGE_FAMILIES


@functools.lru_cache(maxsize=8)
def api_enum(kind: str) -> tuple[str, ...]:
    """Every instance type the SageMaker API accepts for this kind of job, from the pinned botocore."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return tuple(model.shape_for(API_SHAPES[kind]).enum)
