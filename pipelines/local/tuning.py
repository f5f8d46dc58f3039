"""A Tuning step on this machine: optuna proposes, local training jobs run, the log regexes score.

Strategies map to optuna samplers (Bayesian → TPE, Random, Grid); ``Hyperband`` runs as Random
(there is no early stopping of local trials). Each trial's objective is parsed from its log with the
compiled metric_definitions, so a regex that matches nothing fails here, not after an hour on AWS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pipelines.local.jobs import JobFailed


def _space(ranges: dict) -> list[tuple[str, str, dict]]:
    space = []
    for item in ranges.get("ContinuousParameterRanges", []):
        space.append((item["Name"], "float", {"low": float(item["MinValue"]), "high": float(item["MaxValue"]),
                                              "log": item.get("ScalingType") == "Logarithmic"}))
    for item in ranges.get("IntegerParameterRanges", []):
        space.append((item["Name"], "int", {"low": int(item["MinValue"]), "high": int(item["MaxValue"]),
                                            "log": item.get("ScalingType") == "Logarithmic"}))
    for item in ranges.get("CategoricalParameterRanges", []):
        space.append((item["Name"], "categorical", {"choices": list(item["Values"])}))
    return sorted(space)


def _sampler(strategy: str, space: list, seed: int):
    import optuna

    if strategy == "Grid":
        if any(kind != "categorical" for _, kind, _ in space):
            raise JobFailed("Grid strategy needs only categorical ranges")
        return optuna.samplers.GridSampler({name: spec["choices"] for name, _, spec in space}, seed=seed)
    if strategy == "Bayesian":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=2)
    return optuna.samplers.RandomSampler(seed=seed)


def _suggest(trial, space: list) -> dict[str, str]:
    out = {}
    for name, kind, spec in space:
        if kind == "float":
            out[name] = repr(trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"]))
        elif kind == "int":
            out[name] = str(trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"]))
        else:
            out[name] = str(trial.suggest_categorical(name, spec["choices"]))
    return out


def tune(step_name: str, args: dict, run_trial: Callable[[str, dict], dict], log: Callable[[str], None]) -> dict:
    """Run the trials; return Describe-like properties (TrainingJobSummaries best first)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = args["HyperParameterTuningJobConfig"]
    definition = args["TrainingJobDefinition"]
    objective = config["HyperParameterTuningJobObjective"]
    metric, maximize = objective["MetricName"], objective["Type"] == "Maximize"
    limits = config["ResourceLimits"]
    space = _space(config.get("ParameterRanges", {}))
    study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                sampler=_sampler(config.get("Strategy", "Bayesian"), space, seed=0))
    summaries, lock, counter = [], threading.Lock(), [0]

    def objective_fn(trial) -> float:
        tuned = _suggest(trial, space)
        with lock:
            counter[0] += 1
            name = f"{step_name}-{counter[0]:03d}"
        # SageMaker tells each trial which metric it is tuned on (and so that it is a trial) this way.
        static = {**definition.get("StaticHyperParameters", {}), "_tuning_objective_metric": metric}
        properties = run_trial(name, {**static, **tuned})
        if metric not in properties["metrics"]:
            raise JobFailed(f"trial {name}: objective metric {metric!r} matched nothing in the log; check its "
                            f"regex in metric_definitions and the lines the training program prints")
        value = properties["metrics"][metric]
        log(f"trial {name}: {metric}={value:.4f} {tuned}")
        with lock:
            summaries.append({"TrainingJobName": name, "TrainingJobStatus": "Completed", "TunedHyperParameters": tuned,
                              "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": metric, "Value": value}})
        return value

    study.optimize(objective_fn, n_trials=int(limits["MaxNumberOfTrainingJobs"]),
                   n_jobs=int(limits.get("MaxParallelTrainingJobs", 1)), catch=(), show_progress_bar=False)
    ordered = sorted(summaries, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                     reverse=maximize)
    return {"HyperParameterTuningJobName": step_name, "HyperParameterTuningJobStatus": "Completed",
            "TrainingJobSummaries": ordered, "BestTrainingJob": ordered[0], "TrainingJobDefinition": definition,
            "metrics": {}}
