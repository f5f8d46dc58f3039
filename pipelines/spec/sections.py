"""The spec's sections after the model: batch transform, deployment, schedules, tracking, caching, retries."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.spec.base import INSTANCE_RE, Strict, s3_or_local


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
    without_kms_key: bool = Field(False, description="a serverless endpoint has no storage volume for aws.kms_key "
                                  "to encrypt: true deploys one anyway, without it")


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
    rate: str | None = Field(None, description="'N minutes', 'N hours' or 'N days' ('1 day' for one)")
    timezone: str = "UTC"
    enabled: bool = True
    parameters: dict[str, str | int | float] = {}

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.cron is None) == (self.rate is None):
            raise ValueError("give exactly one of cron or rate")
        return self


class Wandb(Strict):
    # wandb refuses / \ # ? % : in project names and caps them at 128 characters
    project: str | None = Field(None, pattern=r"^[^/\\#?%:]{1,128}$")
    entity: str | None = Field(None, pattern=r"^[^/\\#?%:]{1,128}$")
    mode: Literal["offline", "online", "disabled"] = "offline"
    api_key_secret: str | None = Field(None, pattern=r"^(arn:.+|[A-Za-z0-9/_+=.@-]{1,512})$",
                                       description="Secrets Manager secret id holding the key")


class Mlflow(Strict):
    """MLflow tracking: one tree per execution (a parent run named by the execution id, a child per step)."""

    tracking_server_arn: str | None = Field(None, pattern=r"^arn:[^\s]+$", max_length=2048,
                                            description="a SageMaker MLflow tracking server or app (the job's role "
                                            "signs in; also the pipeline's MlflowConfig)")
    tracking_uri: str | None = Field(None, pattern=r"^https?://[^\s]+$", max_length=2048,
                                     description="an MLflow tracking server the jobs reach over HTTP(S)")
    experiment: str | None = Field(None, min_length=1, max_length=256, description="default: the experiment name")

    @model_validator(mode="after")
    def _one_server(self) -> Mlflow:
        if (self.tracking_server_arn is None) == (self.tracking_uri is None):
            raise ValueError("give exactly one of tracking_server_arn or tracking_uri")
        return self


class Tracking(Strict):
    wandb: Wandb = Wandb()
    mlflow: Mlflow | None = Field(None, description="MLflow beside (or instead of) wandb")


class Caching(Strict):
    enabled: bool = True
    expire_after: str = Field("P30D", pattern=r"^P([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+S)?)?$")


class Retry(Strict):
    max_attempts: int = Field(3, ge=0, le=20)
    interval_s: int = Field(30, ge=1, le=3600)
    backoff_rate: float = Field(2.0, ge=1, le=10)


# SageMaker Distribution, the image Studio's notebook jobs use; other regions: set notebooks[].image_uri.
NOTEBOOK_IMAGES = {"us-east-1": "885854791233.dkr.ecr.us-east-1.amazonaws.com/sagemaker-distribution-prod:2-cpu"}


class Notebook(Strict):
    """A notebook of the experiment folder run as a pipeline step (SageMaker's notebook job), after a step."""

    name: str = Field(..., pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}$", description="the step is Notebook-<name>")
    path: str = Field(..., min_length=1, description="relative to the experiment folder, e.g. notebooks/x.ipynb")
    after: str = Field("Evaluate", description="the step it runs after: Reconcile, Prepare, Train-<model>, "
                       "Tune-<model>, Evaluate")
    parameters: dict[str, str | int | float | bool] = Field({}, description="values for the parameters cell; "
                                                           "'$Name' passes pipeline parameter Name")
    instance_type: str = Field("ml.m5.xlarge", pattern=INSTANCE_RE)
    image_uri: str | None = Field(None, description="the notebook-job image (SageMaker Distribution) for AWS")
    kernel: str = "python3"
    max_runtime_s: int = Field(3600, ge=60, le=28 * 86400)


class Budget(Strict):
    """What an execution may cost: validate, upsert and start refuse a worst case above the cap."""

    max_usd_per_execution: float | None = Field(None, gt=0, description="refuse when the worst case exceeds it")
    spot_discount: float = Field(0.7, ge=0, lt=1, description="assumed saving of spot over on-demand (0.7 = pay 30%)")
    documents: int | None = Field(None, gt=0, description="expected corpus size, for the expected-case estimate")
