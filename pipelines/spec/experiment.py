"""The experiment spec: typed, with defaults so that a minimal experiment is about ten lines.

Field-level rules live here; rules that look across fields live in ``pipelines.rules``.
"""

from __future__ import annotations

import re
import warnings
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.spec import ranges

NAME_RE = r"^EXP-\d{4}-[a-z0-9]+(-[a-z0-9]+)*$"
ROLE_RE = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,64}$"
BUCKET_RE = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
INSTANCE_RE = r"^(ml\.[a-z0-9-]+\.[a-z0-9-]+|local|local_gpu)$"
KMS_RE = r"^(arn:aws[a-z-]*:kms:[\w-]+:\d{12}:(key|alias)/[\w/-]+|[0-9a-f-]{36}|alias/[\w/-]+)$"
MODEL_NAME_RE = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_NAME = 48  # pipeline name = name; job names append suffixes and SageMaker caps those at 63
PLACEHOLDER_ACCOUNT = "000000000000"

# Fields named "register" shadow ABCMeta.register on the class; harmless, and the name is the user's word.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


def s3_or_local(value: str) -> str:
    if "://" in value and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", value):
        raise ValueError("only s3:// URIs or local paths are supported")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Aws(Strict):
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    role: str = Field(f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/smpipe-execution", pattern=ROLE_RE,
                      description="SageMaker execution role ARN (checked for real at pipeline-upsert)")
    bucket: str = Field("smpipe-local", pattern=BUCKET_RE)
    prefix: str = Field("experiments", pattern=r"^[A-Za-z0-9!_.*'()/-]{1,200}$")
    image_uri: str = Field(f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/smpipe:0.1.0",
                           pattern=r"^[\w.-]+(:\d+)?/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$")
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
    text: str = "text"
    label: str = "label"
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
    stride: int = Field(64, ge=0, description="token overlap between windows (sliding only)")
    init: Literal["pretrained", "random"] = Field("pretrained", description="random = same architecture, no pretraining")
    hyperparameters: dict[str, Any] = {}


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


class Transform(Strict):
    """Batch transform of new data with the model this execution registers (the best of a comparison)."""

    source: str = Field(..., min_length=1, description="s3://bucket/prefix/ or a local folder of files to score "
                        "(a Studio parameter, TransformSource)")
    content_type: Literal["application/jsonlines", "text/csv"] = Field(
        "application/jsonlines", description="one text per line: a JSON string or {\"text\": ...}; or CSV, first column")
    max_payload_mb: int = Field(6, ge=1, le=100, description="records are sent in requests of at most this size")
    max_concurrent_transforms: int = Field(2, ge=1, le=64)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return s3_or_local(value)


class Serverless(Strict):
    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 4096
    max_concurrency: int = Field(5, ge=1, le=200)


class Deploy(Strict):
    """`make deploy`: a real-time endpoint (or a serverless one) for the latest Approved model package."""

    endpoint_name: str | None = Field(None, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
                                      description="default: the experiment name")
    instance_type: str = Field("ml.m5.xlarge", pattern=INSTANCE_RE)
    instance_count: int = Field(1, ge=1, le=100)
    serverless: Serverless | None = Field(None, description="set to serve from a serverless endpoint instead")


class Schedule(Strict):
    name: str = Field(..., pattern=r"^[0-9a-zA-Z-_.]{1,40}$")
    cron: str | None = None
    rate: str | None = Field(None, pattern=r"^\d+ (minute|minutes|hour|hours|day|days)$")
    timezone: str = "UTC"
    enabled: bool = True
    parameters: dict[str, str | int | float] = {}

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.cron is None) == (self.rate is None):
            raise ValueError("give exactly one of cron or rate")
        return self


class Wandb(Strict):
    project: str | None = None
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    api_key_secret: str | None = Field(None, description="Secrets Manager secret id holding the key")


class Tracking(Strict):
    wandb: Wandb = Wandb()


class Caching(Strict):
    enabled: bool = True
    expire_after: str = Field("P30D", pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$")


class Retry(Strict):
    max_attempts: int = Field(3, ge=0, le=20)
    interval_s: int = Field(30, ge=1, le=3600)
    backoff_rate: float = Field(2.0, ge=1, le=10)


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
