"""What serves the registered model: its SageMaker Model, and the optional batch transform of new data.

Both sit in the gate's true branch, after the model package is registered: a Model made from the best
model's artifact (our image, started with `serve`), then a TransformStep that sends the TransformSource
files to it line by line and writes one prediction per line under the execution's run folder.
"""

from __future__ import annotations

from pipelines.compile.builders.common import (
    Context,
    cache_config,
    environment,
    join,
    output_uri,
    retry_policies,
    tags,
    volume_kms_key,
)
from pipelines.spec.gpu_runtime import transform_ami
from pipelines.spec.step_graph import StepNode
from steps import contract

CONTENT_TYPES = ["application/json", "application/jsonlines", "text/csv"]


def best_model_uri(ctx: Context):
    return join(output_uri(ctx, ctx.steps["evaluate"], contract.OUTPUT_BEST_MODEL), contract.BEST_MODEL_FILE)


def build_best_model(ctx: Context, node: StepNode):
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.serve.model_builder import ModelBuilder

    aws = ctx.spec.aws
    builder = ModelBuilder(s3_model_data_url=best_model_uri(ctx), image_uri=aws.image_uri, sagemaker_session=ctx.session,
                           role_arn=aws.role)
    return ModelStep(
        name=node.name, display_name="Model of the best model",
        description="A SageMaker Model of the best model's artifact for the batch transform (image started with serve).",
        step_args=builder.build())


def build_transform(ctx: Context, node: StepNode):
    from sagemaker.core.transformer import Transformer
    from sagemaker.mlops.workflow.steps import TransformStep

    spec, aws, res = ctx.spec.transform, ctx.spec.aws, ctx.spec.resources.transform
    transformer = Transformer(
        model_name=ctx.steps["best_model"].properties.ModelName, instance_count=res.instance_count,
        instance_type=res.instance_type, strategy="MultiRecord", assemble_with="Line",
        output_path=ctx.run_uri("transform"), output_kms_key=aws.kms_key, accept=spec.content_type,
        max_concurrent_transforms=spec.max_concurrent_transforms, max_payload=spec.max_payload_mb,
        tags=tags(ctx), env={**environment(ctx), "SMPIPE_INSTANCE_TYPE": res.instance_type},
        base_transform_job_name=f"{ctx.spec.name[:20]}-transform", sagemaker_session=ctx.session,
        volume_kms_key=volume_kms_key(aws.kms_key, res.instance_type),
        transform_ami_version=transform_ami(res.instance_type))
    return TransformStep(
        name=node.name, display_name="Batch transform",
        description="Score the TransformSource files with the best model: one prediction per input line.",
        step_args=transformer.transform(data=ctx.parameters["TransformSource"], content_type=spec.content_type,
                                        split_type="Line"),
        cache_config=cache_config(ctx), retry_policies=retry_policies(ctx))
