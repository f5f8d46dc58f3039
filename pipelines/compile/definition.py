"""plan → SageMaker SDK v3 objects → canonical definition JSON (sorted keys, byte-identical per input)."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

from pipelines.compile.builders import REGISTRY
from pipelines.compile.builders.common import Context, tags
from pipelines.compile.plan import Plan
from pipelines.compile.sdk import offline, offline_session


def pipeline(plan: Plan):
    """The SDK Pipeline object (used by definition() here and by upsert in aws.py)."""
    spec = plan.spec
    session = offline_session(spec.aws.region, spec.aws.bucket)
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.mlops.workflow import Pipeline

    kinds = {"String": ParameterString, "Integer": ParameterInteger, "Float": ParameterFloat}
    parameters = {name: kinds[p.type](name=name, default_value=p.default, **({"enum_values": list(p.enum)} if p.enum else {}))
                  for name, p in plan.parameters.items()}
    ctx = Context(plan=plan, session=session, parameters=parameters)
    for node in plan.graph.nodes:  # each after the nodes it reads
        ctx.add(node, REGISTRY[node.kind](ctx, node))
    steps = [ctx.built[node.name] for node in plan.graph.top_level()]
    # No SageMaker Experiments trial per execution: nothing reads it, and the role would need its actions.
    return Pipeline(name=plan.pipeline_name, parameters=list(parameters.values()), steps=steps,
                    sagemaker_session=session, pipeline_experiment_config=None, mlflow_config=_mlflow(plan))


def _mlflow(plan: Plan):
    """SageMaker's managed MLflow for the pipeline itself; a plain tracking URI is the jobs' own business."""
    mlflow = plan.spec.tracking.mlflow
    if mlflow is None or mlflow.tracking_server_arn is None:
        return None
    from sagemaker.core.shapes.shapes import MlflowConfig

    return MlflowConfig(mlflow_resource_arn=mlflow.tracking_server_arn,
                        mlflow_experiment_name=mlflow.experiment or plan.spec.name)


@contextmanager
def _quiet():
    """The SDK logs warnings about fields it pops and DEBUG lines through its own handlers."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def definition(plan: Plan) -> str:
    with _quiet(), offline():
        raw = json.loads(pipeline(plan).definition())
    _complete_model_steps(raw["Steps"], plan.spec)
    return json.dumps(raw, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _complete_model_steps(steps: list, spec) -> None:
    """What ModelBuilder cannot say but CreateModelPackage and CreateModel take: the experiment's tags on the
    model package and the model (cost allocation, ownership), and the model's network settings, the same
    as every job's."""
    for step in steps:
        args = step["Arguments"]
        if step["Type"] in ("RegisterModel", "Model"):
            args["Tags"] = tags(spec)
        if step["Type"] == "Model":
            args["EnableNetworkIsolation"] = spec.aws.network_isolation
            if spec.aws.subnets:
                args["VpcConfig"] = {"Subnets": list(spec.aws.subnets), "SecurityGroupIds": list(spec.aws.security_groups)}
        if step["Type"] == "Condition":
            _complete_model_steps(args.get("IfSteps", []) + args.get("ElseSteps", []), spec)
