"""spec → plan: every name, URI, parameter default and per-model setting, resolved and checked.

Pure but for reading: the code files and every local input are hashed (their digests are remembered in
.local-runs/digests.json by path, size and mtime, so a recompile reads only what changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelines.compile import bundle, code_identity
from pipelines.spec import fs
from pipelines.spec.errors import Problem, SpecError
from pipelines.spec.experiment import Experiment, Hyperparameters, ModelSpec
from pipelines.spec.load import Loaded
from pipelines.spec.parameters import Parameter, declare
from pipelines.spec.step_graph import StepGraph, model_step_name
from pipelines.spec.step_graph import build as build_graph
from pipelines.spec.yaml_source import Sourced, dotted


@dataclass(frozen=True)
class ModelPlan:
    spec: ModelSpec
    step_name: str  # TrainingStep / TuningStep name
    hyperparameters: dict[str, str]  # static, as strings
    parameterised: tuple[str, ...]  # hyperparameters taken from pipeline parameters
    pretrained_uri: str | None  # S3 URI of weights/tokenizer (None: hub download)
    display: str


@dataclass(frozen=True)
class Plan:
    spec: Experiment
    pipeline_name: str
    base_uri: str  # s3://bucket/prefix/EXP
    code_uris: dict[str, str]  # step kind (reconcile, prepare, train, evaluate) → its code URI
    code_sha256: str  # the bundle's own digest (tags)
    parameters: dict[str, Parameter]
    models: tuple[ModelPlan, ...]
    uploads: dict[str, Path] = field(default_factory=dict)  # s3 URI → local file or folder
    upload_fields: dict[str, tuple] = field(default_factory=dict)  # s3 URI → the spec field that names it
    notebook_inputs: dict[str, str] = field(default_factory=dict)  # notebook name → its staged input folder
    experiment_dir: Path | None = None
    code_bundle: bytes = field(default=b"", repr=False)
    code_identities: dict[str, str] = field(default_factory=dict)  # step kind → the identity naming its URI
    sourced: Sourced | None = field(default=None, repr=False)  # where each spec field was written
    graph: StepGraph = field(default=StepGraph(()))  # the steps (pipelines/spec/step_graph.py)

    def model(self, name: str) -> ModelPlan:
        return next(m for m in self.models if m.spec.name == name)

    def problem(self, loc: tuple, message: str, hint: str = "") -> Problem:
        """A problem at the file, line and column that set the field ``loc``."""
        file, line, column = self.sourced.where(loc) if self.sourced else (self.spec.name, 1, 1)
        return Problem(file, line, column, dotted(loc), message, hint)


def plan(loaded: Loaded, cache: bundle.DigestCache | None = None) -> Plan:
    """``cache``: how local files are digested (default: every byte, remembered under .local-runs/)."""
    spec = loaded.spec
    base_uri = f"s3://{spec.aws.bucket}/{spec.aws.prefix.strip('/')}/{spec.name}"
    cache = cache or bundle.DigestCache(loaded.root / ".local-runs" / "digests.json")
    uploads: dict[str, Path] = {}
    fields: dict[str, tuple] = {}
    data_source = _asset(spec.data.source, f"{base_uri}/assets/raw", loaded, uploads, cache)
    _origin(fields, uploads, data_source, ("data", "source"))
    models = tuple(_model(spec, m, base_uri, loaded, uploads, cache) for m in spec.models)
    for i, model in enumerate(models):
        _origin(fields, uploads, model.pretrained_uri, ("models", i, "source"))
    transform = spec.transform and _asset(spec.transform.source, f"{base_uri}/assets/transform", loaded, uploads, cache)
    _origin(fields, uploads, transform, ("transform", "source"))
    parameters = declare(spec, data_source, transform)
    notebooks = {nb.name: _notebook(nb.path, f"{base_uri}/notebooks", loaded, uploads, cache) for nb in spec.notebooks}
    cache.save()
    code, identities = _code(loaded, tuple(uploads.values()))
    if isinstance(cache, bundle.PathDigests):
        identities = {kind: cache.code(kind) for kind in identities}
    code_root = f"s3://{spec.aws.bucket}/{spec.aws.prefix.strip('/')}/code"
    return Plan(spec=spec, pipeline_name=spec.name, base_uri=base_uri, code_sha256=bundle.digest(code),
                code_uris={kind: f"{code_root}/{sha}.tar.gz" for kind, sha in identities.items()},
                code_identities=identities, parameters=parameters, models=models, uploads=uploads,
                upload_fields=fields, code_bundle=code, notebook_inputs=notebooks, experiment_dir=loaded.folder,
                sourced=loaded.sourced, graph=build_graph(spec))


def _code(loaded: Loaded, staged: tuple[Path, ...]) -> tuple[bytes, dict[str, str]]:
    """The bundle, and each step kind's code identity (pipelines/compile/code_identity.py)."""
    try:
        pairs = bundle.files(loaded.root, loaded.folder, staged)
    except bundle.BundleError as exc:
        raise SpecError([Problem(str(exc.path), 1, 1, "code bundle", str(exc), "move the file out of the "
                                 "experiment folder, or name it in the spec (data.source, a model's source, "
                                 "transform.source) so it is staged as data")]) from None
    ids = {kind: code_identity.identity(pairs, loaded.root / "steps", kind) for kind in code_identity.STEP_PROGRAMS}
    return bundle.build(loaded.root, loaded.folder, staged), ids


def _asset(source: str, target: str, loaded: Loaded, uploads: dict[str, Path], cache: bundle.DigestCache) -> str:
    """A local folder the spec names, staged under ``<target>/<digest of every byte>/``: changed content is a new
    URI, so the cache key of every step that reads it changes, an earlier snapshot is never overwritten, and an
    upload sends only what is missing. `make local` and `make pipeline-upsert` stage the same way."""
    if source.startswith("s3://"):
        return source
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = loaded.root / path
    if fs.exists(path) or isinstance(cache, bundle.PathDigests):
        target = f"{target}/{bundle.folder_digest(path, cache)[:16]}"
    uploads[target + "/"] = path
    return target + "/"


def _origin(fields: dict[str, tuple], uploads: dict[str, Path], uri: str | None, loc: tuple) -> None:
    """Which spec field names a folder to stage, so that a missing one is reported at its line."""
    if uri in uploads:
        fields[uri] = loc


def _notebook(relative: str, prefix: str, loaded: Loaded, uploads: dict[str, Path], cache: bundle.DigestCache) -> str:
    """A notebook's input folder, content-addressed (``notebooks/<digest>/``), staged like every local input."""
    path = loaded.folder / relative
    folder = f"{prefix}/{bundle.folder_digest(path, cache)[:16]}/"
    uploads[folder + path.name] = path
    return folder


def _model(spec: Experiment, model: ModelSpec, base_uri: str, loaded: Loaded, uploads: dict,
           cache: bundle.DigestCache) -> ModelPlan:
    merged = Hyperparameters.model_validate({**spec.train.hyperparameters.model_dump(), **model.hyperparameters})
    tuned = set(spec.tune.ranges) if spec.tuning and spec.tune else set()
    parameterised = tuple(n for n in ("epochs", "learning_rate") if n not in model.hyperparameters and n not in tuned)
    static = {k: _text(v) for k, v in merged.model_dump().items() if k not in parameterised and k not in tuned}
    static.update({
        "model_name": model.name,
        "max_length": str(model.max_length),
        "long_documents": model.long_documents,
        "stride": str(model.stride),
        "init": model.init,
    })
    if model.source.startswith("s3://"):
        pretrained = model.source
    elif _is_hub_id(model.source, loaded):
        pretrained = None
        static["hub_model_id"] = model.source
    else:
        pretrained = _asset(model.source, f"{base_uri}/assets/pretrained/{model.name}", loaded, uploads, cache)
    step_name = model_step_name(spec, model.name)
    return ModelPlan(spec=model, step_name=step_name, hyperparameters=static,
                     parameterised=parameterised, pretrained_uri=pretrained,
                     display=step_name.replace("-", " ", 1))


def _is_hub_id(source: str, loaded: Loaded) -> bool:
    return loaded.spec.allow_hub_download and not fs.exists(loaded.root / source) and not Path(source).is_absolute()


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_uploads(plan: Plan) -> None:
    """Every local folder to stage exists (before `make local` or `make pipeline-upsert` sends anything)."""
    missing = [_missing(plan, uri, path) for uri, path in sorted(plan.uploads.items()) if not fs.exists(path)]
    if missing:
        raise SpecError(missing)


def _missing(plan: Plan, uri: str, path: Path) -> Problem:
    hint = ("for the example's model run `make model` first; otherwise fix the path" if "/assets/pretrained/" in uri
            else "a relative path is read from the project root; fix the path or give an s3:// URI")
    return plan.problem(plan.upload_fields.get(uri, ()), f"local folder not found: {path}", hint)
