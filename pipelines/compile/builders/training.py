"""One TrainingStep per model, or one TuningStep per model over the same job definition."""

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
from pipelines.compile.plan import ModelPlan
from pipelines.spec import ranges
from pipelines.spec.step_graph import StepNode
from steps import contract


def _trainer(ctx: Context, model: ModelPlan):
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import (
        CheckpointConfig,
        Compute,
        MetricDefinition,
        Networking,
        OutputDataConfig,
        StoppingCondition,
    )

    aws, res = ctx.spec.aws, ctx.spec.resources.training
    hyperparameters: dict = dict(model.hyperparameters)
    for name in model.parameterised:  # typed parameters, cast to text by the service, never str()-ed here
        param = {"epochs": "Epochs", "learning_rate": "LearningRate"}[name]
        hyperparameters[name] = join(ctx.parameters[param], on="")
    kind = "tuning" if ctx.spec.tuning else "training"
    trainer = ModelTrainer(
        training_image=aws.image_uri, role=aws.role, sagemaker_session=ctx.session,
        base_job_name=f"{ctx.spec.name[:20]}-{model.spec.name}"[:38],
        compute=Compute(instance_type=ctx.parameters["TrainInstanceType"],
                        instance_count=ctx.parameters["TrainInstanceCount"], volume_size_in_gb=res.volume_gb,
                        volume_kms_key_id=volume_kms_key(aws.kms_key, res.instance_type),
                        enable_managed_spot_training=res.spot),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=res.max_runtime_s,
                                             max_wait_time_in_seconds=(res.max_wait_s or 2 * res.max_runtime_s)
                                             if res.spot else None),
        # One execution's own folder: a later execution must never find (and resume) this one's checkpoints.
        # Trials of a tuning job each get their own sub-folder, named after the trial's training job.
        checkpoint_config=CheckpointConfig(s3_uri=ctx.run_uri("checkpoints", model.spec.name),
                                           local_path=contract.TRAIN_CHECKPOINTS) if res.spot else None,
        output_data_config=OutputDataConfig(s3_output_path=ctx.run_uri(kind, model.spec.name), kms_key_id=aws.kms_key),
        networking=Networking(enable_network_isolation=aws.network_isolation,
                              enable_inter_container_traffic_encryption=aws.encrypt_inter_container_traffic,
                              security_group_ids=aws.security_groups or None, subnets=aws.subnets or None),
        hyperparameters=hyperparameters, environment=environment(ctx, "train"), tags=_shape_tags(ctx),
    )
    return trainer.with_metric_definitions(
        [MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in contract.metric_definitions()])


def _shape_tags(ctx: Context) -> list:
    from sagemaker.core.shapes import Tag

    return [Tag(key=t["Key"], value=t["Value"]) for t in tags(ctx)]


def _channels(ctx: Context, model: ModelPlan) -> list:
    from sagemaker.train.configs import InputData

    prepared = output_uri(ctx, ctx.steps["prepare"], contract.OUTPUT_PREPARED)
    channels = [
        InputData(channel_name=contract.CHANNEL_CODE, data_source=ctx.plan.code_uris["train"]),
        InputData(channel_name=contract.CHANNEL_TRAIN, data_source=join(prepared, model.spec.name)),
    ]
    if model.pretrained_uri:
        channels.append(InputData(channel_name=contract.CHANNEL_PRETRAINED, data_source=model.pretrained_uri))
    return channels


def build_training(ctx: Context, node: StepNode):
    from sagemaker.mlops.workflow.steps import TrainingStep

    m = ctx.plan.model(node.model)
    return TrainingStep(name=node.name, display_name=m.display,
                        description=f"Fine-tune {m.spec.name} ({m.spec.source}) with accelerate on all GPUs of all "
                                    "instances, then export it to TorchScript.",
                        step_args=_trainer(ctx, m).train(input_data_config=_channels(ctx, m)),
                        cache_config=cache_config(ctx), retry_policies=retry_policies(ctx))


def _range(name: str, parsed: ranges.ParsedRange):
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    if parsed.kind == "categorical":
        return CategoricalParameter(list(parsed.values))
    if parsed.kind == "integer":
        return IntegerParameter(int(parsed.min), int(parsed.max), scaling_type=parsed.scaling)
    return ContinuousParameter(parsed.min, parsed.max, scaling_type=parsed.scaling)


def build_tuning(ctx: Context, node: StepNode):
    from sagemaker.mlops.workflow.steps import TuningStep
    from sagemaker.train.tuner import HyperparameterTuner

    tune, m = ctx.spec.tune, ctx.plan.model(node.model)
    tuner = HyperparameterTuner(
        model_trainer=_trainer(ctx, m), objective_metric_name=tune.objective.metric,
        objective_type=tune.objective.direction.capitalize(),
        hyperparameter_ranges={n: _range(n, r) for n, r in sorted(tune.parsed_ranges().items())},
        metric_definitions=contract.metric_definitions(), strategy=tune.strategy,
        max_jobs=tune.max_jobs, max_parallel_jobs=tune.max_parallel_jobs, tags=tags(ctx),
    )
    return TuningStep(
        name=node.name, display_name=m.display,
        description=f"Tune {m.spec.name}: {tune.strategy}, {tune.max_jobs} jobs, objective "
                    f"{tune.objective.direction} {tune.objective.metric}.",
        step_args=tuner.tune(inputs=_channels(ctx, m)), cache_config=cache_config(ctx),
        retry_policies=retry_policies(ctx))


def model_artifact(ctx: Context, step, model: ModelPlan):
    """The S3 URI of a model step's model.tar.gz (the best trial's for a TuningStep).

    Read from the tuning job's own properties (its output path and best trial), never rebuilt from this
    execution's run folder: a cached Tune step's job belongs to the earlier execution that ran it."""
    if not ctx.spec.tuning:
        return step.properties.ModelArtifacts.S3ModelArtifacts
    return join(step.properties.TrainingJobDefinition.OutputDataConfig.S3OutputPath,
                step.properties.BestTrainingJob.TrainingJobName, "output/model.tar.gz")
