"""Reconcile and Prepare: the ProcessingSteps that make one data snapshot for every model.

Both write under the execution's own run folder: a cached step points at the folder of the execution that
made it, which no later or concurrent execution writes to.
"""

from __future__ import annotations

from pipelines.compile.builders.common import (
    Context,
    cache_config,
    code_input,
    join,
    output_uri,
    processor,
    retry_policies,
    s3_input,
    s3_output,
)
from pipelines.spec.step_graph import StepNode
from steps import contract


def snapshot_argument(ctx: Context) -> list:
    """The first data step's ``--data-snapshot``: SageMaker's cache key is the step's arguments, never the data,
    so a start over a mutable s3:// prefix passes the prefix's listing digest (DataSnapshot) to make new
    objects a new key; unchanged objects keep it, and every later step stays cached."""
    return ["--data-snapshot", join(ctx.parameters["DataSnapshot"], on="")]


def build_reconcile(ctx: Context, node: StepNode):
    from sagemaker.mlops.workflow.steps import ProcessingStep

    data = ctx.spec.data
    args = ["reconcile", "--text-column", data.text, "--label-column", data.label, *snapshot_argument(ctx)]
    if data.max_documents:
        args += ["--max-documents", str(data.max_documents), "--seed", str(data.seed)]
    step_args = processor(ctx, "reconcile", ctx.parameters["ProcessingInstanceType"]).run(
        inputs=[code_input(ctx, "reconcile"), s3_input("raw", ctx.parameters["DataSource"], contract.PROC_RAW)],
        outputs=[s3_output(contract.OUTPUT_RECONCILED, ctx.run_uri("data", "reconciled"), contract.OUT_RECONCILED)],
        arguments=args,
    )
    return ProcessingStep(
        name=node.name, display_name="Reconcile raw data",
        description="Gather the raw data into one snapshot with a content hash; count and report empty, "
                    "unlabelled and duplicate records (data_report.json).",
        step_args=step_args, cache_config=cache_config(ctx), retry_policies=retry_policies(ctx))


def build_prepare(ctx: Context, node: StepNode):
    from sagemaker.mlops.workflow.steps import ProcessingStep

    data = ctx.spec.data
    reconcile = ctx.steps.get("reconcile")
    if reconcile is not None:
        source = s3_input("reconciled", output_uri(ctx, reconcile, contract.OUTPUT_RECONCILED), contract.PROC_RECONCILED)
    else:
        source = s3_input("raw", ctx.parameters["DataSource"], contract.PROC_RAW)
    inputs = [code_input(ctx, "prepare"), source]
    first = [] if reconcile is not None else snapshot_argument(ctx)
    models = []
    for model in ctx.plan.models:
        if model.pretrained_uri:
            inputs.append(s3_input(f"pretrained-{model.spec.name}", model.pretrained_uri,
                                   f"{contract.PROC_PRETRAINED}/{model.spec.name}"))
        models.append(f"{model.spec.name}:{model.spec.max_length}:{model.spec.long_documents}:{model.spec.stride}"
                      f":{model.hyperparameters.get('hub_model_id', '')}:{model.spec.max_windows}:{model.spec.aggregation}")
    args = ["prepare", "--text-column", data.text, "--label-column", data.label, "--seed", str(data.seed),
            "--splits", f"{data.splits.train},{data.splits.validation},{data.splits.test}", *first]
    for item in models:
        args += ["--model", item]
    step_args = processor(ctx, "prepare", ctx.parameters["ProcessingInstanceType"]).run(
        inputs=inputs,
        outputs=[s3_output(contract.OUTPUT_PREPARED, ctx.run_uri("data", "prepared"), contract.OUT_PREPARED)],
        arguments=args,
    )
    return ProcessingStep(
        name=node.name, display_name="Prepare data",
        description="Label map, stratified train/validation/test split, tokenisation per model from the same split.",
        step_args=step_args, cache_config=cache_config(ctx), retry_policies=retry_policies(ctx))
