"""What every step builder shares: the build context, job settings from the spec, S3 inputs/outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.compile.plan import Plan
from pipelines.spec.instance_types import has_local_storage
from steps import contract


@dataclass
class Context:
    """Built once per compile; builders read it and register their steps in it."""

    plan: Plan
    session: object
    parameters: dict[str, object]  # name → SDK Parameter
    steps: dict[str, object] = field(default_factory=dict)  # builder kind → step (models, notebooks: a list)
    built: dict[str, object] = field(default_factory=dict)  # step name → step
    property_files: dict[str, object] = field(default_factory=dict)

    @property
    def spec(self):
        return self.plan.spec

    def add(self, node, step) -> None:
        """Record a built step under its name and kind, for the builders after it."""
        self.built[node.name] = step
        if node.kind in ("train", "tune", "notebook"):
            self.steps.setdefault("notebooks" if node.kind == "notebook" else "models", []).append(step)
        else:
            self.steps[node.kind] = step

    def run_uri(self, *parts: str):
        """s3://…/EXP/runs/<execution id>/<parts>: each execution writes only here."""
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        return Join(on="/", values=[f"{self.plan.base_uri}/{contract.RUNS}", ExecutionVariables.PIPELINE_EXECUTION_ID,
                                    *parts])


def cache_config(ctx: Context):
    from sagemaker.mlops.workflow.steps import CacheConfig

    caching = ctx.spec.caching
    return CacheConfig(enable_caching=caching.enabled, expire_after=caching.expire_after if caching.enabled else None)


def retry_policies(ctx: Context) -> list:
    from sagemaker.mlops.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )

    retry = ctx.spec.retry
    if retry.max_attempts == 0:
        return []
    common = {"interval_seconds": retry.interval_s, "backoff_rate": retry.backoff_rate, "max_attempts": retry.max_attempts}
    return [
        StepRetryPolicy(exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING], **common),
        SageMakerJobStepRetryPolicy(exception_types=[SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                                                     SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                                                     SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT], **common),
    ]


def tags(ctx_or_spec) -> list[dict[str, str]]:
    spec = getattr(ctx_or_spec, "spec", ctx_or_spec)
    merged = {"smpipe:experiment": spec.name, **spec.aws.tags}
    return [{"Key": k, "Value": v} for k, v in sorted(merged.items())]


def environment(ctx: Context, kind: str | None = None) -> dict[str, str]:
    """Job environment; ``kind``: the step kind whose code identity the job runs (none for a transform, which
    runs the model's own code). Never a secret: the wandb key is fetched by the job from Secrets Manager."""
    wandb = ctx.spec.tracking.wandb
    env = {
        "USE_SMDEBUG": "0",
        "SMPIPE_EXPERIMENT": ctx.spec.name,
        "HF_HUB_OFFLINE": "0" if ctx.spec.allow_hub_download else "1",
        "WANDB_MODE": wandb.mode,
        "WANDB_PROJECT": wandb.project or ctx.spec.name,
        "TOKENIZERS_PARALLELISM": "false",
    }
    if kind is not None:
        env["SMPIPE_CODE_SHA256"] = ctx.plan.code_identities[kind]
    if wandb.entity:
        env["WANDB_ENTITY"] = wandb.entity
    if wandb.api_key_secret:
        env["SMPIPE_WANDB_SECRET_ID"] = wandb.api_key_secret
    mlflow = ctx.spec.tracking.mlflow
    if mlflow is not None:  # the tree's parent is the execution: its id, resolved when the execution starts
        from sagemaker.core.workflow.execution_variables import ExecutionVariables

        env["MLFLOW_TRACKING_URI"] = mlflow.tracking_server_arn or mlflow.tracking_uri
        env["MLFLOW_EXPERIMENT_NAME"] = mlflow.experiment or ctx.spec.name
        env["SMPIPE_EXECUTION_ID"] = ExecutionVariables.PIPELINE_EXECUTION_ID
    return env


def s3_input(name: str, uri, local_path: str):
    from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input

    return ProcessingInput(input_name=name, s3_input=ProcessingS3Input(
        s3_uri=uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File",
        s3_data_distribution_type="FullyReplicated"))


def s3_output(name: str, uri, local_path: str):
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output

    return ProcessingOutput(output_name=name, s3_output=ProcessingS3Output(
        s3_uri=uri, local_path=local_path, s3_upload_mode="EndOfJob"))


def code_input(ctx: Context, kind: str):
    return s3_input("code", ctx.plan.code_uris[kind], contract.PROC_CODE)


def processor(ctx: Context, job: str, instance_type):
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import Processor

    aws = ctx.spec.aws
    res = ctx.spec.resources.evaluation if job == "evaluate" else ctx.spec.resources.processing
    network = NetworkConfig(
        enable_network_isolation=aws.network_isolation,
        encrypt_inter_container_traffic=aws.encrypt_inter_container_traffic,
        security_group_ids=aws.security_groups or None,
        subnets=aws.subnets or None,
    )
    return Processor(
        role=aws.role, image_uri=aws.image_uri, instance_count=1, instance_type=instance_type,
        volume_size_in_gb=res.volume_gb, volume_kms_key=volume_kms_key(aws.kms_key, res.instance_type),
        output_kms_key=aws.kms_key,
        max_runtime_in_seconds=res.max_runtime_s, base_job_name=f"{ctx.spec.name[:20]}-{job}",
        sagemaker_session=ctx.session, env=environment(ctx, job), tags=tags(ctx), network_config=network,
    )


def volume_kms_key(kms_key: str | None, default_instance_type: str) -> str | None:
    """Omitted where the (default) instance has local NVMe storage: SageMaker refuses the key there and the
    hardware encrypts that storage; start and validate refuse a parameter value of the other kind."""
    return None if has_local_storage(default_instance_type) else kms_key


def output_uri(ctx: Context, step, output_name: str):
    return step.properties.ProcessingOutputConfig.Outputs[output_name].S3Output.S3Uri


def join(*values, on: str = "/"):
    from sagemaker.core.workflow.functions import Join

    return Join(on=on, values=list(values))
