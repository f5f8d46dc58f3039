"""Execute a compiled pipeline definition on this machine: DAG order, caching, conditions, failure.

Every execution gets its own folder (``<runs>/<execution id>/``) with state.json, one log per step
and a sandbox per job. A step whose resolved arguments match an earlier successful run is reused
(SageMaker's cache semantics; execution variables are compared as written, not as values).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipelines.local import expressions as ex
from pipelines.local.cache import StepCache
from pipelines.local.graph import dependencies, descendants, flatten, parameter_values
from pipelines.local.jobs import Job, JobFailed, run_processing
from pipelines.local.notebook import is_notebook_job, run_notebook
from pipelines.local.store import LocalStore
from pipelines.local.training import run_training
from pipelines.local.transform import create_model, run_transform
from pipelines.local.tuning import tune

JOB_TYPES = {"Processing", "Training", "Tuning", "Transform"}


@dataclass
class Options:
    store: LocalStore
    runs: Path
    registry: Path
    code_root: Path
    parameters: dict = field(default_factory=dict)
    from_step: str | None = None
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
        self.cache = StepCache(options.runs / "cache", options.use_cache, options.from_step, self.deps, self.execution_id)
        for name, result in state.get("steps", {}).items():
            if name in self.steps and self.steps[name][0]["Type"] != "Condition" and result["status"] in REUSED_ON_RETRY:
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
    def run_step(self, name: str) -> dict:
        step, _ = self.steps[name]
        kind = step["Type"]
        started, instance = time.perf_counter(), None
        if kind in JOB_TYPES:
            body = self.cache.body(step, self.scope)
            key = self.cache.key(step, self.scope)
            hit, why = self.cache.lookup(name, step, key, body)
            if hit is not None:
                self.options.say(f"↺ {name}: cached, same arguments as {hit['execution']}")
                return {"status": "Cached", "seconds": 0.0, "properties": hit["properties"], "reason": hit["execution"]}
            self.options.say(f"▶ {name} ({kind}) runs: {why}")
            args = ex.evaluate(step["Arguments"], self.scope)
            instance = resources_of(args)
            properties = self._run_job(name, kind, args)
            if (step.get("CacheConfig") or {}).get("Enabled"):
                self.cache.remember(name, key, properties, body)
        elif kind == "Condition":
            properties = self._condition(name, step)
        elif kind == "Fail":
            message = ex.evaluate(step["Arguments"].get("ErrorMessage", ""), self.scope)
            raise JobFailed(f"Fail step {name}: {message}")
        elif kind == "Model":
            properties = create_model(self.folder / "models", self.execution_id, name, ex.evaluate(step["Arguments"],
                                                                                                   self.scope))
        elif kind == "RegisterModel":
            properties = self._register(name, ex.evaluate(step["Arguments"], self.scope))
        else:
            raise JobFailed(f"step type {kind!r} is not supported by the local executor")
        seconds = time.perf_counter() - started
        self.options.say(f"✓ {name} ({seconds:.1f}s)")
        return {"status": "Succeeded", "seconds": seconds, "properties": properties, "reason": "", "instance": instance}

    def _job(self, name: str) -> Job:
        return Job(name=name, sandbox=self.folder / "jobs" / name, log=self.folder / "logs" / f"{name}.log",
                   store=self.options.store, code_root=self.options.code_root, echo=self.options.echo,
                   image=self.options.image)

    def _run_job(self, name: str, kind: str, args: dict) -> dict:
        if kind == "Processing":
            return run_processing(self._job(name), args)
        if kind == "Training" and is_notebook_job(args):
            return run_notebook(self._job(name), args, self.options.code_root)
        if kind == "Training":
            return run_training(self._job(name), args, args.get("HyperParameters", {}))
        if kind == "Transform":
            return run_transform(self._job(name), args, self.folder / "models")

        def trial(job_name: str, hyperparameters: dict) -> dict:
            return run_training(self._job(job_name), args["TrainingJobDefinition"], hyperparameters, trial=True)

        return tune(name, args, trial, lambda line: self.options.say(f"  {line}"))

    def _condition(self, name: str, step: dict) -> dict:
        args = step["Arguments"]
        outcome = all(ex.condition(c, self.scope) for c in args["Conditions"])
        losing = args.get("ElseSteps" if outcome else "IfSteps", [])
        with self.lock:
            for s in losing:
                self.skipped_branch |= descendants(self.deps, s["Name"])
        self.options.say(f"  {name}: condition is {str(outcome).lower()}")
        return {"Outcome": outcome}

    def _register(self, name: str, args: dict) -> dict:
        group = args["ModelPackageGroupName"]
        folder = self.options.registry / group
        folder.mkdir(parents=True, exist_ok=True)
        with self.lock:
            version = 1 + max((int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()), default=0)
            entry = {"ModelPackageGroupName": group, "ModelPackageVersion": version,
                     "ModelPackageArn": f"arn:local:model-package/{group}/{version}",
                     "ModelApprovalStatus": args.get("ModelApprovalStatus", "PendingManualApproval"),
                     "ModelDataUrl": args["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
                     "InferenceSpecification": args["InferenceSpecification"],
                     "PipelineExecutionId": self.execution_id, "CreationTime": datetime.now(UTC).isoformat()}
            (folder / f"{version}.json").write_text(json.dumps(entry, indent=2), encoding="utf-8")
        self.options.say(f"  registered {group} version {version} ({entry['ModelApprovalStatus']})")
        return {"ModelPackageArn": entry["ModelPackageArn"], "RegistryFile": str(folder / f"{version}.json")}

    # -- the DAG --------------------------------------------------------------------------------
    def run(self) -> Outcome:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "definition.json").write_text(json.dumps(self.definition, indent=2), encoding="utf-8")
        pending, failure = set(self.steps) - set(self.results), ""
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
            self.results.setdefault(name, {"status": "NotRun", "reason": "branch not taken" if name in
                                           self.skipped_branch else "an earlier step failed"})
        self.results = {name: self.results[name] for name in self._order()}
        self._save_state()
        return Outcome(self.execution_id, "Failed" if failure else "Succeeded", self.folder, self.results, failure)

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
        except (JobFailed, ex.ExpressionError, KeyError, ValueError, OSError) as exc:
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
