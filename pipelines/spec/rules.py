"""Rules that look across fields of a validated spec. Each returns problems; none raises."""

from __future__ import annotations

import difflib
import re

from pipelines.spec import ranges, rules_aws, rules_runtime, rules_tuning, secrets_check
from pipelines.spec.errors import Problem
from pipelines.spec.experiment import HYPERPARAMETER_NAMES, Experiment, Hyperparameters
from pipelines.spec.instance_types import api_enum, is_gpu_instance
from pipelines.spec.parameters import LOCAL_INSTANCE_TYPES, check_values, declare
from pipelines.spec.yaml_source import Sourced, dotted
from steps.contract import EVALUATION_METRICS, TRAINING_METRICS

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check(spec: Experiment, doc: Sourced) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple, message: str, hint: str = "") -> None:
        file, line, col = doc.where(loc)
        problems.append(Problem(file, line, col, dotted(loc), message, hint))

    _steps(spec, add)
    _models(spec, add)
    _tuning(spec, add)
    rules_tuning.check(spec, add)
    _metrics(spec, add)
    _resources(spec, add)
    _schedules(spec, add)
    _tracking(spec, add)
    _s3_prefixes(spec, add)
    rules_aws.check(spec, add)
    rules_runtime.check(spec, add)
    for path, what in secrets_check.find(spec.model_dump(mode="json")):
        add(path, f"this value looks like {what}; a spec is read by everyone who reads the repository and the "
            "pipeline definition (the value is not repeated here)",
            "put the secret in AWS Secrets Manager and write its name or ARN (tracking.wandb.api_key_secret), "
            "then remove the value from the file and from git history")
    return problems


def _s3_prefixes(spec: Experiment, add) -> None:
    """A folder URI without its final '/' is a key prefix to SageMaker: s3://b/data also reads s3://b/data-old/."""
    uris = [(("data", "source"), spec.data.source)]
    uris += [(("transform", "source"), spec.transform.source)] if spec.transform else []
    uris += [(("models", i, "source"), m.source) for i, m in enumerate(spec.models)]
    uris += [(("schedules", i, "parameters", k), str(v)) for i, s in enumerate(spec.schedules)
             for k, v in s.parameters.items()]
    for loc, uri in uris:
        key = uri[5:].partition("/")[2] if uri.startswith("s3://") else ""
        if key and not key.endswith("/") and "." not in key.rsplit("/", 1)[-1]:
            add(loc, f"{uri} has no final '/': SageMaker reads every key that starts with it ({uri}-old/ too), "
                "and the IAM policy grants it as a folder", f"write {uri}/")


def _tracking(spec: Experiment, add) -> None:
    wandb = spec.tracking.wandb
    if wandb.api_key_secret and wandb.mode != "online":
        add(("tracking", "wandb", "api_key_secret"), f"the key is read only with mode: online (this spec says "
            f"{wandb.mode}), so the role is granted no access to it and runs stay {wandb.mode}",
            "set tracking.wandb.mode: online, or drop api_key_secret")
    if wandb.api_key_secret and spec.aws.network_isolation:
        add(("tracking", "wandb", "api_key_secret"), "jobs with aws.network_isolation: true cannot reach Secrets "
            "Manager (nor wandb), so the key could never be read", "drop api_key_secret and keep mode: offline "
            "(runs are saved in the job output for `wandb sync`), or turn network isolation off")
    _mlflow(spec, add)


def _mlflow(spec: Experiment, add) -> None:
    mlflow = spec.tracking.mlflow
    if mlflow is None:
        return
    if spec.aws.network_isolation:
        add(("tracking", "mlflow"), "jobs with aws.network_isolation: true cannot reach an MLflow tracking server",
            "turn network isolation off, or remove tracking.mlflow (wandb offline keeps runs in the job output)")
    arn = mlflow.tracking_server_arn
    if arn:
        from pipelines.spec import values

        for message in values.check_arn(arn, "sagemaker", spec.aws.region, "mlflow-"):
            add(("tracking", "mlflow", "tracking_server_arn"), message, "the ARN of a SageMaker MLflow tracking "
                "server (or app) in the jobs' region: Studio → MLflow lists it")


def _steps(spec: Experiment, add) -> None:
    if spec.steps.train and spec.steps.tune:
        add(("steps",), "train and tune are both enabled", "a tuning job trains; set steps.train: false")
    if not spec.training and not spec.tuning:
        add(("steps",), "neither train nor tune is enabled", "enable one of steps.train or steps.tune")
    if spec.steps.register and not spec.steps.evaluate:
        add(("steps", "register"), "register needs evaluate (the gate reads evaluation.json)",
            "enable steps.evaluate or disable steps.register")
    if spec.transform and not spec.steps.evaluate:
        add(("transform",), "a batch transform scores with the best model, which evaluate picks",
            "enable steps.evaluate or remove transform")
    if spec.steps.register and not spec.register.group:
        add(("register",), "register.group (the model package group) is required when registering",
            "e.g. register: {group: my-classifier}")


def _models(spec: Experiment, add) -> None:
    seen: set[str] = set()
    for i, model in enumerate(spec.models):
        if model.name in seen:
            add(("models", i, "name"), f"model name {model.name!r} is used twice", "names must be unique")
        seen.add(model.name)
        for key in model.hyperparameters:
            if key not in HYPERPARAMETER_NAMES:
                add(("models", i, "hyperparameters", key), f"unknown hyperparameter {key!r}",
                    "known: " + ", ".join(HYPERPARAMETER_NAMES))
        try:
            Hyperparameters.model_validate({**spec.train.hyperparameters.model_dump(), **model.hyperparameters})
        except ValueError as exc:
            add(("models", i, "hyperparameters"), f"invalid hyperparameters: {exc.errors()[0]['msg']}")  # type: ignore[attr-defined]
        if model.long_documents == "sliding" and model.stride >= model.max_length // 2:
            add(("models", i, "stride"), f"stride {model.stride} must be less than half of max_length "
                f"{model.max_length}", f"at most {max(0, model.max_length // 2 - 1)}; leave stride out for "
                f"{min(64, model.max_length // 4)} (a quarter of max_length, at most 64)")
        _model_source(spec, model, i, add)


def _model_source(spec: Experiment, model, i: int, add) -> None:
    source = model.source
    if source.startswith("s3://") or source.startswith(("/", ".", "~")) or "/" in source and _looks_local(source):
        return
    if HUB_ID_RE.match(source):
        if not spec.allow_hub_download:
            add(("models", i, "source"), f"{source!r} looks like a model hub id; jobs do not download from the hub",
                "use a local folder or an s3:// URI, or set allow_hub_download: true")
        elif spec.aws.network_isolation:
            add(("models", i, "source"), "a hub download cannot work with aws.network_isolation: true",
                "use a local folder or an s3:// URI")
        return
    add(("models", i, "source"), f"{source!r} is not a local path, s3:// URI or hub id")


def _looks_local(source: str) -> bool:
    return source.startswith(("models/", ".models/", "experiments/")) or source.count("/") > 1


def _tuning(spec: Experiment, add) -> None:
    if spec.tuning and spec.tune is None:
        add(("steps", "tune"), "steps.tune is enabled but there is no tune: section",
            "add tune: {ranges: {learning_rate: \"1e-5->5e-5\"}}")
        return
    if spec.tune is None:
        return
    if spec.tuning and not spec.tune.ranges:
        add(("tune", "ranges"), "tuning needs at least one range", "e.g. learning_rate: \"1e-5->5e-5\"")
    for name, raw in spec.tune.ranges.items():
        if name not in HYPERPARAMETER_NAMES:
            add(("tune", "ranges", name), f"unknown hyperparameter {name!r}", "known: " + ", ".join(HYPERPARAMETER_NAMES))
            continue
        try:
            ranges.parse(name, raw)
        except ValueError as exc:
            add(("tune", "ranges", name), str(exc))
    if spec.tune.max_parallel_jobs > spec.tune.max_jobs:
        add(("tune", "max_parallel_jobs"), "max_parallel_jobs exceeds max_jobs")
    if spec.tune.objective.metric not in TRAINING_METRICS:
        add(("tune", "objective", "metric"), f"the training program does not produce {spec.tune.objective.metric!r}",
            "one of: " + ", ".join(TRAINING_METRICS))
    if spec.tune.strategy == "Grid" and any(
        isinstance(r, str) and "->" in r or not isinstance(r, str | list) and r.values is None
        for r in spec.tune.ranges.values()
    ):
        add(("tune", "strategy"), "Grid search takes only categorical ranges", "use \"16,32\" lists or strategy: Bayesian")


def _metrics(spec: Experiment, add) -> None:
    objective = spec.train.hyperparameters.objective
    if objective not in TRAINING_METRICS or not objective.startswith("validation:"):
        add(("train", "hyperparameters", "objective"), f"{objective!r} is not a validation metric of the training program",
            "one of: " + ", ".join(m for m in TRAINING_METRICS if m.startswith("validation:")))
    if spec.gate.metric not in EVALUATION_METRICS:
        add(("gate", "metric"), f"the evaluate program does not produce {spec.gate.metric!r}",
            "one of: " + ", ".join(EVALUATION_METRICS))


def _resources(spec: Experiment, add) -> None:
    for step, kind in (("processing", "processing"), ("training", "training"), ("evaluation", "processing"),
                       ("transform", "transform")):
        instance_type = getattr(spec.resources, step).instance_type
        if instance_type not in LOCAL_INSTANCE_TYPES and instance_type not in api_enum(kind):
            close = difflib.get_close_matches(instance_type, api_enum(kind), n=1)
            add(("resources", step, "instance_type"), f"{instance_type} is not a {kind} instance type SageMaker offers",
                f"did you mean {close[0]}?" if close else "see the SageMaker pricing page for the instance types")
    hosting = api_enum("hosting")
    for loc, instance_type in [(("deploy", "instance_type"), spec.deploy.instance_type)] + [
            (("register", "inference_instances", i), t) for i, t in enumerate(spec.register.inference_instances)]:
        if instance_type not in hosting and instance_type not in LOCAL_INSTANCE_TYPES:
            close = difflib.get_close_matches(instance_type, hosting, n=1)
            add(loc, f"{instance_type} is not an endpoint instance type SageMaker offers",
                f"did you mean {close[0]}?" if close else "see the SageMaker hosting instance types")
    for step in ("processing", "evaluation"):
        if getattr(spec.resources, step).instance_count != 1:
            add(("resources", step, "instance_count"), f"{step} runs on one instance (its programs are not sharded)",
                "set instance_count: 1; training scales over instances instead")
    training = spec.resources.training
    if spec.resources.gpus and not is_gpu_instance(training.instance_type):
        add(("resources", "training", "instance_type"), f"{training.instance_type} has no GPU but resources.gpus is true",
            "use a GPU family (ml.g5, ml.g6, ml.p4d, ml.p5 ...) or set gpus: false")
    precision = spec.train.hyperparameters.precision
    if precision in ("bf16", "fp16") and not is_gpu_instance(training.instance_type) and training.instance_type != "local":
        add(("train", "hyperparameters", "precision"), f"{precision} needs a GPU instance, "
            f"{training.instance_type} has none", "use precision: auto")
    if spec.tuning and training.instance_count > 1 and spec.tune and spec.tune.max_parallel_jobs * training.instance_count > 100:
        add(("tune", "max_parallel_jobs"), "max_parallel_jobs × instance_count exceeds 100 instances")


def _schedules(spec: Experiment, add) -> None:
    if spec.schedules and not spec.aws.scheduler_role:
        add(("schedules",), "schedules need aws.scheduler_role (the role EventBridge Scheduler assumes)",
            "make iam-policy prints the policy it needs")
    names: set[str] = set()
    for i, schedule in enumerate(spec.schedules):
        if schedule.name in names:
            add(("schedules", i, "name"), f"schedule name {schedule.name!r} is used twice")
        names.add(schedule.name)
        declared = declare(spec, spec.data.source, spec.transform and spec.transform.source)
        for name, value in schedule.parameters.items():
            for message in check_values(declared, {name: value}, spec.aws.kms_key):
                add(("schedules", i, "parameters", name), message, "schedule values start real executions")
