"""Notebook steps: SageMaker's notebook job (a training job running the notebook-job image's scheduler), as
the SDK's NotebookJobStep writes it, minus its upload at compile time: the notebook's input folder is
content-addressed in the plan and staged by upsert (and by the local executor) like the code bundle.

A notebook reads the run's data from parameters filled by step properties: ``prepared_uri`` always,
``evaluation_uri`` and ``best_model_uri`` after Evaluate, ``model_uri`` after a Train step; its executed
copy lands in ``runs/<execution id>/notebooks/<name>/``.
"""

from __future__ import annotations

import os

from pipelines.compile.builders.common import Context, output_uri, retry_policies, tags, volume_kms_key
from pipelines.spec.sections import NOTEBOOK_IMAGES
from pipelines.spec.step_graph import StepNode
from steps import contract

ENTRYPOINT = ["amazon_sagemaker_scheduler"]
CHANNEL = "sagemaker_headless_execution_pipelinestep"
DEFAULT_IMAGES = NOTEBOOK_IMAGES


def _inputs(ctx: Context, after: str) -> dict:
    out = {"prepared_uri": output_uri(ctx, ctx.steps["prepare"], contract.OUTPUT_PREPARED)}
    if after == "Evaluate" and "evaluate" in ctx.steps:
        out["evaluation_uri"] = output_uri(ctx, ctx.steps["evaluate"], contract.OUTPUT_EVALUATION)
        out["best_model_uri"] = output_uri(ctx, ctx.steps["evaluate"], contract.OUTPUT_BEST_MODEL)
    for step, model in zip(ctx.steps.get("models", []), ctx.plan.models, strict=False):
        if model.step_name == after and not ctx.spec.tuning:
            out["model_uri"] = step.properties.ModelArtifacts.S3ModelArtifacts
    return out


def _value(ctx: Context, value):
    """'$Name' passes pipeline parameter Name; anything else is written as text (a notebook job's
    parameters are strings, as SageMaker passes them)."""
    if isinstance(value, str) and value.startswith("$"):
        from pipelines.compile.builders.common import join

        return join(ctx.parameters[value[1:]], on="")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _step_class():
    from sagemaker.mlops.workflow.notebook_job_step import NotebookJobStep

    class StagedNotebookJobStep(NotebookJobStep):
        """NotebookJobStep's request, with the input folder given instead of uploaded (no timestamps)."""

        def configure(self, ctx: Context, staged: str, output) -> StagedNotebookJobStep:
            self._ctx, self._staged, self._output = ctx, staged, output
            return self

        @property
        def arguments(self):
            ctx, aws, nb = self._ctx, self._ctx.spec.aws, self._nb
            request = {
                "TrainingJobName": self.notebook_job_name, "RoleArn": aws.role,
                "RetryStrategy": {"MaximumRetryAttempts": 1},
                "StoppingCondition": {"MaxRuntimeInSeconds": nb.max_runtime_s},
                "EnableInterContainerTrafficEncryption": aws.encrypt_inter_container_traffic,
                "AlgorithmSpecification": {"TrainingImage": self.image_uri, "TrainingInputMode": "File",
                                           "ContainerEntrypoint": ENTRYPOINT},
                "InputDataConfig": [{"ChannelName": CHANNEL, "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": self._staged, "S3DataDistributionType": "FullyReplicated"}}}],
                "OutputDataConfig": {"S3OutputPath": self._output, **({"KmsKeyId": aws.kms_key} if aws.kms_key else {})},
                "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": nb.instance_type,
                                   **({"VolumeKmsKeyId": k} if (k := volume_kms_key(aws.kms_key, nb.instance_type)) else {})},
                "Tags": tags(ctx) + [{"Key": "sagemaker:name", "Value": self.notebook_job_name},
                                     {"Key": "sagemaker:notebook-name", "Value": os.path.basename(nb.path)},
                                     {"Key": "sagemaker:notebook-job-origin", "Value": "PIPELINE_STEP"},
                                     {"Key": "sagemaker:is-studio-archived", "Value": "false"}],
                "Environment": {"AWS_DEFAULT_REGION": aws.region, "SM_JOB_DEF_VERSION": "1.0",
                                "SM_ENV_NAME": "sagemaker-default-env", "SM_SKIP_EFS_SIMULATION": "true",
                                "SM_EXECUTION_INPUT_PATH": f"/opt/ml/input/data/{CHANNEL}",
                                "SM_KERNEL_NAME": nb.kernel, "SM_INPUT_NOTEBOOK_NAME": os.path.basename(nb.path),
                                "SM_OUTPUT_NOTEBOOK_NAME": f"{self.notebook_job_name}.ipynb",
                                "SMPIPE_EXPERIMENT": ctx.spec.name},
                "HyperParameters": self.parameters,
            }
            if aws.subnets:
                request["VpcConfig"] = {"Subnets": list(aws.subnets), "SecurityGroupIds": list(aws.security_groups)}
            return request

    return StagedNotebookJobStep


def build_notebook(ctx: Context, node: StepNode):
    nb = next(n for n in ctx.spec.notebooks if n.name == node.notebook)
    parameters = {**_inputs(ctx, nb.after), **{k: _value(ctx, v) for k, v in nb.parameters.items()}}
    step = _step_class()(
        name=node.name, display_name=f"Notebook {nb.name}", description=f"Run {nb.path} on the "
        f"run's data after {nb.after}.", notebook_job_name=f"{ctx.spec.name[:20]}-{nb.name}"[:63],
        input_notebook=nb.path, image_uri=nb.image_uri or DEFAULT_IMAGES.get(
            ctx.spec.aws.region, f"sagemaker-distribution-image-for-{ctx.spec.aws.region}"),
        kernel_name=nb.kernel, instance_type=nb.instance_type, parameters=parameters,
        depends_on=[ctx.built[name] for name in node.depends_on], retry_policies=retry_policies(ctx))
    step._nb = nb
    return step.configure(ctx, ctx.plan.notebook_inputs[nb.name], ctx.run_uri("notebooks", nb.name))
