"""Evaluate (one ProcessingStep comparing every model on the same test set) and the metric gate."""

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
from pipelines.compile.builders.serving import CONTENT_TYPES, best_model_uri
from pipelines.compile.builders.training import model_artifact
from pipelines.spec.step_graph import StepNode
from steps import contract

PROPERTY_FILE = "Evaluation"


def gate_json_path(metric: str) -> str:
    """evaluation.json path of the best model's metric: best.test_macro_f1 for test:macro_f1."""
    return "best." + metric.replace(":", "_")


def build_evaluate(ctx: Context, node: StepNode):
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.steps import ProcessingStep

    inputs = [code_input(ctx, "evaluate"), s3_input("prepared", output_uri(ctx, ctx.steps["prepare"], contract.OUTPUT_PREPARED),
                                        contract.PROC_PREPARED)]
    for model, step in zip(ctx.plan.models, ctx.steps["models"], strict=True):
        inputs.append(s3_input(f"model-{model.spec.name}", model_artifact(ctx, step, model),
                               f"{contract.PROC_MODELS}/{model.spec.name}"))
    report = PropertyFile(name=PROPERTY_FILE, output_name=contract.OUTPUT_EVALUATION, path=contract.EVALUATION_FILE)
    args = ["evaluate", "--objective", ctx.spec.gate.metric]
    if ctx.spec.steps.register and ctx.spec.register.group:  # the runs name where the best model goes
        args += ["--model-package-group", ctx.spec.register.group]
    for model in ctx.plan.models:
        args += ["--model", model.spec.name]
    step_args = processor(ctx, "evaluate", ctx.parameters["EvaluationInstanceType"]).run(
        inputs=inputs,
        outputs=[s3_output(contract.OUTPUT_EVALUATION, ctx.run_uri("evaluation"), contract.OUT_EVALUATION),
                 s3_output(contract.OUTPUT_BEST_MODEL, ctx.run_uri("best-model"), contract.OUT_BEST_MODEL)],
        arguments=args,
    )
    ctx.property_files["evaluation"] = report
    return ProcessingStep(
        name=node.name, display_name="Evaluate and compare",
        description="Batched inference of every exported model on the same test set: per-label precision, recall, "
                    "F1, confusion matrix, leaderboard and McNemar tests; copies the best model for registration.",
        step_args=step_args, property_files=[report], cache_config=cache_config(ctx),
        retry_policies=retry_policies(ctx))


def _gate_metric(ctx: Context):
    """The best model's gate metric, read from Evaluate's property file."""
    from sagemaker.core.workflow.functions import JsonGet

    return JsonGet(step_name=ctx.steps["evaluate"].name, property_file=ctx.property_files["evaluation"],
                   json_path=gate_json_path(ctx.spec.gate.metric))


def build_fail(ctx: Context, node: StepNode):
    from sagemaker.mlops.workflow.fail_step import FailStep

    return FailStep(name=node.name, display_name="Metric below threshold",
                    description="The best model did not reach the gate; nothing is registered.",
                    error_message=join(f"best model's {ctx.spec.gate.metric}", _gate_metric(ctx),
                                       "is below the threshold", ctx.parameters["GateThreshold"], on=" "))


def build_gate(ctx: Context, node: StepNode):
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.mlops.workflow.condition_step import ConditionStep

    graph = ctx.plan.graph
    return ConditionStep(
        name=node.name, display_name=f"{ctx.spec.gate.metric} gate",
        description=f"Register the best model only if its {ctx.spec.gate.metric} >= GateThreshold.",
        conditions=[ConditionGreaterThanOrEqualTo(left=_gate_metric(ctx), right=ctx.parameters["GateThreshold"])],
        if_steps=[ctx.built[n.name] for n in graph.branch(node.name, "if")],
        else_steps=[ctx.built[n.name] for n in graph.branch(node.name, "else")])


def build_register(ctx: Context, node: StepNode):
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.serve.model_builder import ModelBuilder

    aws, reg = ctx.spec.aws, ctx.spec.register
    builder = ModelBuilder(s3_model_data_url=best_model_uri(ctx), image_uri=aws.image_uri, sagemaker_session=ctx.session,
                           role_arn=aws.role)
    transform_instances = sorted({*reg.inference_instances, ctx.spec.resources.transform.instance_type} - {"local"})
    return ModelStep(
        name=node.name, display_name="Register best model",
        description=f"Register the best model (TorchScript + tokenizer + id2label + serving code) in {reg.group}.",
        step_args=builder.register(
            model_package_group_name=reg.group, content_types=CONTENT_TYPES, response_types=CONTENT_TYPES,
            inference_instances=list(reg.inference_instances), transform_instances=transform_instances,
            approval_status=ctx.parameters["ApprovalStatus"],
            # Traceability: which execution produced the model (deploy names the endpoint after it), and where
            # its runs are: the MLflow run named by the execution id, the wandb group of that id.
            customer_metadata_properties={"smpipe:experiment": ctx.spec.name,
                                          "smpipe:execution-id": ExecutionVariables.PIPELINE_EXECUTION_ID,
                                          **tracking_metadata(ctx.spec)}))


def tracking_metadata(spec) -> dict[str, str]:
    """Where the package's runs are, for each tracker that is on; a name CreateModelPackage would refuse as a
    metadata value (its pattern allows letters, digits, spaces and _.:/=+-@) is left out, never altered."""
    wandb, mlflow = spec.tracking.wandb, spec.tracking.mlflow
    found = {}
    if mlflow is not None:
        found["smpipe:mlflow-experiment"] = mlflow.experiment or spec.name
    if wandb.mode != "disabled":
        found["smpipe:wandb-project"] = "/".join(filter(None, [wandb.entity, wandb.project or spec.name]))
    return {k: v for k, v in found.items() if _metadata_value(v)}


def _metadata_value(value: str) -> bool:
    import unicodedata

    return 0 < len(value) <= 256 and all(unicodedata.category(c)[0] in "LNZ" or c in "_.:/=+-@" for c in value)
