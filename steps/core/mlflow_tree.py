"""MLflow tracking: one tree per pipeline execution.

The execution's run (named by its execution id) is the parent; each step that runs adds a child run named by
the step (Prepare, Train-<model>, Evaluate), tagged with the experiment, the execution id, the step, the
code digest and the data digest (steps/core/tracking.py starts it beside wandb's run). The first step to
start creates the parent; the others find it by its tag.

Configured by the job's environment, which the definition writes from `tracking.mlflow`: MLFLOW_TRACKING_URI
(a tracking server's URI or a SageMaker MLflow ARN, resolved by the sagemaker-mlflow plugin with the job's
role) and MLFLOW_EXPERIMENT_NAME; the execution id comes from steps/core/execution.py. A local run points
SMPIPE_MLFLOW_TRACKING_URI (and SMPIPE_MLFLOW_ARTIFACTS) at its own store. Tracking never fails a step: the
first error is printed once and the step goes on untracked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TAG = "smpipe."


def configured() -> bool:
    return bool(os.environ.get("MLFLOW_TRACKING_URI"))


def tracking_uri() -> str:
    return os.environ.get("SMPIPE_MLFLOW_TRACKING_URI") or os.environ["MLFLOW_TRACKING_URI"]


class StepRun:
    """The child run of one step; every call is a no-op after the first failure (said once)."""

    def __init__(self, step: str, data_sha256: str = ""):
        self.step, self.data_sha256, self.client, self.run_id, self.parent = step, data_sha256, None, None, None
        if configured():
            self._guard(self._start)

    def _guard(self, action):
        """Run ``action``; on its first failure, say so once and stop tracking this step."""
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the step
            print(f"warning: MLflow tracking failed for {self.step} ({type(exc).__name__}: {str(exc)[:200]}); "
                  "the step goes on untracked", file=sys.stderr, flush=True)
            self.client = None
            return None

    def _start(self) -> None:
        # MLflow's defaults retry an unreachable server for minutes per call: a step waits seconds, then goes on
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri())
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("SMPIPE_EXPERIMENT", "smpipe")
        experiment = client.get_experiment_by_name(name)
        # a local store keeps artifacts beside it (else MLflow writes them under the job's own working directory)
        location = os.environ.get("SMPIPE_MLFLOW_ARTIFACTS") if tracking_uri().startswith("sqlite:") else None
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            name, artifact_location=location)
        from steps.core.execution import execution_id

        execution = execution_id() or "manual"
        tags = {f"{TAG}experiment": os.environ.get("SMPIPE_EXPERIMENT", ""), f"{TAG}execution_id": execution}
        parent = _parent(client, experiment_id, execution, tags)
        child_tags = {**tags, f"{TAG}step": self.step, "mlflow.parentRunId": parent,
                      f"{TAG}code_sha256": os.environ.get("SMPIPE_CODE_SHA256", ""), f"{TAG}data_sha256": self.data_sha256,
                      f"{TAG}job": os.environ.get("TRAINING_JOB_NAME") or os.environ.get("PROCESSING_JOB_NAME", "")}
        self.run_id = client.create_run(experiment_id, tags=child_tags, run_name=self.step).info.run_id
        self.client, self.parent = client, parent
        print(f"tracking: MLflow run {self.run_id} ({self.step}) under execution run {parent}", flush=True)

    def params(self, values: dict) -> None:
        from mlflow.entities import Param

        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in values.items()]
        if self.client is not None:
            self._guard(lambda: self.client.log_batch(self.run_id, params=items))

    def metrics(self, values: dict, step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(_metric_key(k), float(v), now, step or 0) for k, v in values.items()
                 if isinstance(v, int | float) and not isinstance(v, bool)]
        if self.client is not None:
            self._guard(lambda: self.client.log_batch(self.run_id, metrics=items))

    def artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            if self.client is not None and Path(path).is_file():
                self._guard(lambda p=path: self.client.log_artifact(self.run_id, str(p)))

    def tag_execution(self, tags: dict) -> None:
        """Tags on the execution's run (Evaluate names the model package group the gate registers in)."""
        if self.client is not None:
            self._guard(lambda: [self.client.set_tag(self.parent, f"{TAG}{k}", str(v)) for k, v in tags.items()])

    def end(self, status: str = "FINISHED") -> None:
        if self.client is not None:
            self._guard(lambda: self.client.set_terminated(self.run_id, status))


def _metric_key(key: str) -> str:
    """MLflow keys allow letters, digits, _ - . / and spaces: a colon (train:loss) becomes a slash."""
    return "".join(c if c.isalnum() or c in "_-./ " else "/" for c in str(key))[:250]


def _parent(client, experiment_id: str, execution: str, tags: dict) -> str:
    query = f"tags.`{TAG}execution_id` = '{execution}' and tags.`{TAG}kind` = 'execution'"
    found = client.search_runs([experiment_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    return client.create_run(experiment_id, tags={**tags, f"{TAG}kind": "execution"}, run_name=execution).info.run_id

