"""Execute a compiled pipeline definition on this machine: the engine (DAG order, expressions, caching,
state, retry). It knows no step type: each step's handler (handlers.py, by the definition's ``Type``) runs it.

Every execution gets its own folder (``<runs>/<execution id>/``) with state.json, one log per step
and a sandbox per job. A step whose resolved arguments match an earlier successful run is reused
(SageMaker's cache semantics; execution variables are compared as written, not as values).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipelines.local import expressions as ex
from pipelines.local.cache import StepCache
from pipelines.local.graph import ancestors, dependencies, descendants, flatten, parameter_values
from pipelines.local.handlers import StepContext, handler_for
from pipelines.local.jobs import Job, JobFailed, TerminalProgress
from pipelines.store.base import Store, StoreError


@dataclass
class Options:
    store: Store
    runs: Path
    registry: Path
    code_root: Path
    parameters: dict = field(default_factory=dict)
    from_step: str | None = None
    only: str | None = None  # run this step and the steps it needs, nothing else (make plan's data estimate)
    use_cache: bool = True
    parallel: int = 1
    echo: bool = False
    say: object = print
    image: str | None = None  # docker=1: every job in this image


@dataclass
class Outcome:
    execution_id: str
    status: str  # Succeeded | Failed
    folder: Path
    steps: dict  # name → {"status", "seconds", "reason", "properties"}
    failure: str = ""


REUSED_ON_RETRY = {"Succeeded", "Cached"}


def local_mlflow_uri(runs: Path) -> str:
    """The local MLflow store of these runs (SQLite, as `make mlflow` opens it)."""
    return f"sqlite:///{(runs / 'mlflow.db').resolve()}"


def local_mlflow_artifacts(runs: Path) -> str:
    return (runs / "mlflow-artifacts").resolve().as_uri()


def resources_of(args: dict) -> dict | None:
    """The instance type and count a job step asked for (what the same step would bill on SageMaker)."""
    config = (args.get("ProcessingResources", {}).get("ClusterConfig") or args.get("ResourceConfig")
              or args.get("TrainingJobDefinition", {}).get("ResourceConfig") or args.get("TransformResources"))
    return {"type": config["InstanceType"], "count": int(config["InstanceCount"])} if config else None


def unknown_step(name: str, steps: dict) -> str:
    import difflib

    close = difflib.get_close_matches(name, steps, n=1)
    return (f"--from {name}: the pipeline has no such step" + (f" (did you mean {close[0]}?)" if close else "")
            + f"; its steps: {', '.join(sorted(steps))}")


def saved_state(folder: Path) -> dict:
    path = folder / "state.json"
    if not path.is_file():
        raise ex.ExpressionError(f"no execution to retry at {folder} (state.json missing)")
    return json.loads(path.read_text(encoding="utf-8"))


class Execution:
    """One run of a definition; ``retry_of`` re-runs an earlier execution's unfinished steps under the same
    execution id and parameters (SageMaker's RetryPipelineExecution), so training resumes its checkpoints."""

    def __init__(self, definition: dict, options: Options, pipeline_name: str, retry_of: str | None = None):
        self.definition, self.options = definition, options
        self.steps = flatten(definition["Steps"])
        self.deps = dependencies(self.steps)
        if options.from_step and options.from_step not in self.steps:
            raise ex.ExpressionError(unknown_step(options.from_step, self.steps))
        self.execution_id = retry_of or f"local-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        self.folder = options.runs / self.execution_id
        # The tracking server a definition names is not reachable from here: jobs log to the local store instead
        # (a user's own server may be given with SMPIPE_MLFLOW_TRACKING_URI).
        self.mlflow_uri = os.environ.get("SMPIPE_MLFLOW_TRACKING_URI") or local_mlflow_uri(options.runs)
        state = saved_state(self.folder) if retry_of else {}
        if state and options.parameters:
            raise ex.ExpressionError("a retry keeps the execution's parameters; start a new execution to change them")
        self.scope = ex.Scope(
            parameters=state.get("parameters") or parameter_values(definition, options.parameters),
            execution={"PipelineExecutionId": self.execution_id, "PipelineName": pipeline_name,
                       "PipelineExecutionArn": f"arn:local:pipeline/{pipeline_name}/execution/{self.execution_id}",
                       "StartDateTime": state.get("started") or datetime.now(UTC).isoformat()},
            read_property_file=self._read_property_file)
        self.results: dict[str, dict] = {}
        self.skipped_branch: set[str] = set()
        self.lock = threading.Lock()
        self.progress = TerminalProgress(options.say, float(os.environ.get("SMPIPE_TERMINAL_PROGRESS_S", "15")))
        self.cache = StepCache(options.runs / "cache", options.use_cache, options.from_step, self.deps, self.execution_id)
        for name, result in state.get("steps", {}).items():
            if name in self.steps and self._kept(name) and result["status"] in REUSED_ON_RETRY:
                self.results[name] = {**result, "reason": "kept from the earlier attempt"}
                self.scope.steps[name] = result["properties"]

    # -- property files -------------------------------------------------------------------------
    def _read_property_file(self, step: str, name: str) -> dict:
        definition, _ = self.steps[step]
        spec = next(p for p in definition.get("PropertyFiles", []) if p["PropertyFileName"] == name)
        output = ex.navigate(self.scope.steps[step], ex.tokens(f"ProcessingOutputConfig.Outputs['{spec['OutputName']}']"),
                             name)
        target = self.folder / "property-files" / step
        self.options.store.download(output["S3Output"]["S3Uri"].rstrip("/") + "/" + spec["FilePath"], target)
        return json.loads((target / Path(spec["FilePath"]).name).read_text(encoding="utf-8"))

    # -- one step -------------------------------------------------------------------------------
    def _kept(self, name: str) -> bool:
        return handler_for(self.steps[name][0]["Type"]).kept_on_retry

    def run_step(self, name: str) -> dict:
        step, _ = self.steps[name]
        handler = handler_for(step["Type"])
        started, instance = time.perf_counter(), None
        if handler.job:
            body = self.cache.body(step, self.scope)
            key = self.cache.key(step, self.scope)
            hit, why = self.cache.lookup(name, step, key, body)
            if hit is not None:
                self.options.say(f"↺ {name}: cached, same arguments as {hit['execution']}")
                return {"status": "Cached", "seconds": 0.0, "properties": hit["properties"], "reason": hit["execution"]}
            self.options.say(f"▶ {name} ({step['Type']}) runs: {why}")
        args = ex.evaluate(step["Arguments"], self.scope) if handler.resolves_arguments else step["Arguments"]
        if handler.job:
            instance = resources_of(args)
        properties = handler.run(self._context(), name, args)
        if handler.job and (step.get("CacheConfig") or {}).get("Enabled"):
            self.cache.remember(name, key, properties, body)
        if "Outcome" in properties:
            self._skip_branch(step, properties["Outcome"])
        seconds = time.perf_counter() - started
        self.options.say(f"✓ {name} ({seconds:.1f}s)")
        return {"status": "Succeeded", "seconds": seconds, "properties": properties, "reason": "", "instance": instance}

    def _context(self) -> StepContext:
        return StepContext(execution_id=self.execution_id, folder=self.folder, registry=self.options.registry,
                           code_root=self.options.code_root, scope=self.scope, lock=self.lock, job=self._job,
                           say=self.options.say)

    def _job(self, name: str) -> Job:
        return Job(name=name, sandbox=self.folder / "jobs" / name, log=self.folder / "logs" / f"{name}.log",
                   stand_ins={"SMPIPE_MLFLOW_TRACKING_URI": self.mlflow_uri,
                              # what a job's sagemaker:pipeline-execution-arn tag holds on AWS (ListTags)
                              "SMPIPE_PIPELINE_EXECUTION_ARN": self.scope.execution["PipelineExecutionArn"],
                              "SMPIPE_MLFLOW_ARTIFACTS": local_mlflow_artifacts(self.options.runs)},
                   store=self.options.store, code_root=self.options.code_root, echo=self.options.echo,
                   image=self.options.image, progress=self.progress)

    def _skip_branch(self, step: dict, outcome: bool) -> None:
        """A condition decided: the steps of the branch not taken, and all that depend on them, never run."""
        losing = step["Arguments"].get("ElseSteps" if outcome else "IfSteps", [])
        with self.lock:
            for s in losing:
                self.skipped_branch |= descendants(self.deps, s["Name"])

    # -- the DAG --------------------------------------------------------------------------------
    def run(self) -> Outcome:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "definition.json").write_text(json.dumps(self.definition, indent=2), encoding="utf-8")
        pending, failure = set(self.steps) - set(self.results), ""
        if self.options.only:
            pending &= ancestors(self.deps, self.options.only)
        for name in sorted(self.results):
            self.options.say(f"= {name}: kept from the earlier attempt")
        self._save_state()  # a killed execution leaves its parameters, so it can be retried
        with ThreadPoolExecutor(max_workers=max(1, self.options.parallel)) as pool:
            running = {}
            while pending or running:
                for name in sorted(self._ready(pending, running)):
                    if failure or name in self.skipped_branch:
                        pending.discard(name)
                        continue
                    if len(running) >= max(1, self.options.parallel):
                        break
                    pending.discard(name)
                    running[pool.submit(self.run_step, name)] = name
                if not running:
                    for name in pending:
                        self.results[name] = {"status": "NotRun", "reason": "an earlier step failed"}
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    failure = self._collect(name, future) or failure
                self._save_state()
        for name in self.steps:
            self.results.setdefault(name, {"status": "NotRun", "reason": self._not_run(name, failure)})
        self.results = {name: self.results[name] for name in self._order()}
        self._save_state()
        return Outcome(self.execution_id, "Failed" if failure else "Succeeded", self.folder, self.results, failure)

    def _not_run(self, name: str, failure: str) -> str:
        if name in self.skipped_branch:
            return "branch not taken"
        return "an earlier step failed" if failure or not self.options.only else f"not needed for {self.options.only}"

    def _order(self) -> list[str]:
        """Steps in dependency order (ties by name): how the summary lists them."""
        done: list[str] = []
        while len(done) < len(self.steps):
            done += sorted(n for n in self.steps if n not in done and self.deps[n] <= set(done))[:1]
        return done

    def _ready(self, pending: set[str], running: dict) -> list[str]:
        busy = set(running.values())
        return [n for n in pending if not (self.deps[n] & (pending | busy))]

    def _collect(self, name: str, future) -> str:
        try:
            result = future.result()
        except (JobFailed, ex.ExpressionError, StoreError, OSError) as exc:  # a job's failure; a bug propagates
            tail = getattr(exc, "tail", "")
            code = getattr(exc, "exit_code", None)
            self.results[name] = {"status": "Failed", "reason": str(exc), "exit_code": code, "tail": tail,
                                  "log": str(self.folder / "logs" / f"{name}.log")}
            self.options.say(f"✗ {name} failed: {exc}")
            if tail:
                self.options.say("  last lines of its log:\n" + "\n".join("    " + t for t in tail.splitlines()))
            return f"{name}: {exc}"
        self.results[name] = result
        self.scope.steps[name] = result["properties"]
        return ""

    def _save_state(self) -> None:
        state = {"execution_id": self.execution_id, "parameters": self.scope.parameters, "steps": self.results,
                 "started": self.scope.execution["StartDateTime"]}
        (self.folder / "state.json").write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
