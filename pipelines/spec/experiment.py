"""The experiment spec: typed, with defaults so that a minimal experiment is about ten lines.

Field-level rules live here; rules that look across fields live in ``pipelines.rules``.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.spec import ranges
from pipelines.spec.base import (  # noqa: F401 - re-exported: the spec's names
    BUCKET_RE,
    INSTANCE_RE,
    KMS_RE,
    MAX_NAME,
    MODEL_NAME_RE,
    NAME_RE,
    PLACEHOLDER_ACCOUNT,
    PLACEHOLDER_BUCKET,
    ROLE_RE,
    Strict,
    s3_or_local,
)
from pipelines.spec.sections import (  # noqa: F401
    Budget,
    Caching,
    Deploy,
    Notebook,
    Retry,
    Schedule,
    Tracking,
    Transform,
)

# Fields named "register" shadow ABCMeta.register on the class; harmless, and the name is the user's word.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class Aws(Strict):
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
    role: str = Field(f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/smpipe-execution", pattern=ROLE_RE,
                      description="SageMaker execution role ARN (checked for real at pipeline-upsert)")
    bucket: str = Field(PLACEHOLDER_BUCKET, pattern=BUCKET_RE)
    prefix: str = Field("experiments", pattern=r"^[A-Za-z0-9!_.*'()/-]{1,200}$")
    image_uri: str = Field(f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/smpipe:0.1.0",
                           pattern=r"^[A-Za-z0-9_.-]+(:[0-9]+)?/[A-Za-z0-9_./-]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$")
    kms_key: str | None = Field(None, pattern=KMS_RE)
    subnets: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    security_groups: list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]] = []
    network_isolation: bool = False
    encrypt_inter_container_traffic: bool = True
    tags: dict[Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(max_length=256)]] = {}
    scheduler_role: str | None = Field(None, pattern=ROLE_RE,
                                       description="role EventBridge Scheduler assumes to start executions")
    max_parallel_steps: int = Field(10, ge=1, le=1000, description="pipeline ParallelismConfiguration")

    @model_validator(mode="after")
    def _vpc_pairs(self) -> Aws:
        if bool(self.subnets) != bool(self.security_groups):
            raise ValueError("subnets and security_groups must be given together (a VPC config needs both)")
        if len(self.tags) > 40:
            raise ValueError("at most 40 tags (SageMaker allows 50 and the pipeline adds its own)")
        return self


class Splits(Strict):
    train: float = Field(0.8, gt=0, lt=1)
    validation: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _sum(self) -> Splits:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {self.train + self.validation + self.test:g}")
        return self


class Data(Strict):
    source: str = Field(..., min_length=1, description="s3://bucket/prefix/ or a local path (synced by the CLI)")
    text: str = Field("text", min_length=1, max_length=256, description="the column holding the text")
    label: str = Field("label", min_length=1, max_length=256, description="the column holding the label")
    splits: Splits = Splits()
    seed: int = Field(42, ge=0)
    max_documents: int | None = Field(None, gt=0, description="cap after reconciliation (stratified)")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return s3_or_local(value)


class ModelSpec(Strict):
    name: str = Field(..., pattern=MODEL_NAME_RE, max_length=24)
    source: str = Field(..., min_length=1, description="local dir, s3:// URI, or hub id (needs allow_hub_download)")
    max_length: int = Field(256, ge=8, le=32768)
    long_documents: Literal["head", "head+tail", "sliding"] = "head"
    stride: int = Field(64, ge=0, description="token overlap between windows (sliding only); default: 64, or a "
                        "quarter of max_length where that is less")
    max_windows: int = Field(8, ge=0, le=100_000, description="sliding: at most this many windows of a document per "
                             "training epoch, spread over it and redrawn each epoch (0 = every window)")
    aggregation: Literal["mean", "max", "vote"] = Field("mean", description="how evaluation and serving combine a "
                                                        "document's windows: mean logits, per-label max, or vote")
    init: Literal["pretrained", "random"] = Field("pretrained", description="random = same architecture, no pretraining")
    hyperparameters: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _default_stride(cls, data):
        """Sliding windows must overlap by less than half a window: with max_length 128 a fixed default of 64
        would be refused, so an unset stride follows max_length."""
        if isinstance(data, dict) and "stride" not in data and data.get("long_documents") == "sliding":
            max_length = data.get("max_length", 256)
            if isinstance(max_length, int) and not isinstance(max_length, bool):
                return {**data, "stride": min(64, max_length // 4)}
        return data


class Resources(Strict):
    instance_type: str = Field("ml.m5.xlarge", pattern=INSTANCE_RE)
    instance_count: int = Field(1, ge=1, le=100)
    volume_gb: int = Field(30, ge=1, le=16384)
    max_runtime_s: int = Field(86400, ge=60, le=28 * 86400)
    spot: bool = False
    max_wait_s: int | None = Field(None, ge=60, le=28 * 86400)

    @model_validator(mode="after")
    def _spot(self) -> Resources:
        if self.max_wait_s is not None and not self.spot:
            raise ValueError("max_wait_s only applies with spot: true")
        if self.spot and self.max_wait_s is not None and self.max_wait_s < self.max_runtime_s:
            raise ValueError("max_wait_s must be >= max_runtime_s (SageMaker counts waiting plus running)")
        return self


class AllResources(Strict):
    processing: Resources = Resources()
    training: Resources = Resources(instance_type="ml.g5.2xlarge")
    evaluation: Resources = Resources(instance_type="ml.g5.xlarge")
    transform: Resources = Resources(instance_type="ml.m5.xlarge", max_runtime_s=3600)
    gpus: bool | None = Field(None, description="true = training must run on GPU instances")


class StepsEnabled(Strict):
    reconcile: bool = True
    train: bool | None = None  # defaults to `not tune`
    tune: bool = False
    evaluate: bool = True
    register: bool = True


class Hyperparameters(Strict):
    epochs: int = Field(3, ge=1, le=1000)
    learning_rate: float = Field(3e-5, gt=0, lt=1)
    batch_size: int = Field(32, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0, lt=1)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    seed: int = Field(42, ge=0)
    objective: str = Field("validation:macro_f1", description="metric that picks the best epoch")
    group_by_length: bool = True
    torch_compile: bool = Field(True, description="torch.compile each repeated layer on GPU (ignored on CPU)")
    max_steps: int = Field(0, ge=0, description="stop after this many optimizer steps (0 = no limit)")


HYPERPARAMETER_NAMES = tuple(Hyperparameters.model_fields)


class Train(Strict):
    hyperparameters: Hyperparameters = Hyperparameters()


class Objective(Strict):
    metric: str = "validation:macro_f1"
    direction: Literal["maximize", "minimize"] = "maximize"


class Range(Strict):
    min: float | None = None
    max: float | None = None
    values: list[str | int | float] | None = None
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"
    type: Literal["continuous", "integer", "categorical"] | None = None


class Tune(Strict):
    objective: Objective = Objective()
    ranges: dict[str, Range | str | list[str | int | float]] = {}
    strategy: Literal["Bayesian", "Random", "Grid", "Hyperband"] = "Bayesian"
    max_jobs: int = Field(6, ge=1, le=500)
    max_parallel_jobs: int = Field(2, ge=1, le=100)

    def parsed_ranges(self) -> dict[str, ranges.ParsedRange]:
        return {name: ranges.parse(name, raw) for name, raw in self.ranges.items()}


class Gate(Strict):
    metric: str = "test:macro_f1"
    threshold: float = Field(0.5, description="in [0, 1]")

    @field_validator("threshold")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold {value} is outside [0, 1] (metrics are fractions)")
        return value


class Register(Strict):
    group: str | None = Field(None, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    approval: Literal["PendingManualApproval", "Approved", "Rejected"] = "PendingManualApproval"
    inference_instances: list[Annotated[str, Field(pattern=INSTANCE_RE)]] = ["ml.g5.xlarge", "ml.m5.xlarge"]


class Experiment(Strict):
    name: str = Field(..., pattern=NAME_RE, max_length=MAX_NAME)
    description: str = Field("", max_length=3072)
    aws: Aws = Aws()
    data: Data
    models: list[ModelSpec] = Field(..., min_length=1, max_length=8)
    steps: StepsEnabled = StepsEnabled()
    resources: AllResources = AllResources()
    train: Train = Train()
    tune: Tune | None = None
    gate: Gate = Gate()
    register: Register = Register()
    transform: Transform | None = None
    deploy: Deploy = Deploy()
    notebooks: list[Notebook] = Field([], max_length=10)
    budget: Budget = Budget()
    schedules: list[Schedule] = []
    tracking: Tracking = Tracking()
    caching: Caching = Caching()
    retry: Retry = Retry()
    allow_hub_download: bool = False

    @property
    def tuning(self) -> bool:
        return self.steps.tune

    @property
    def training(self) -> bool:
        return self.steps.train if self.steps.train is not None else not self.steps.tune
