"""spec file (+ base template, + key=value overrides) → validated ``Experiment``.

Every problem is collected and raised at once as ``SpecError`` with file:line:column.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel, ValidationError

from pipelines import ROOT
from pipelines.spec import fs, rules, rules_notebooks, rules_paths, rules_project, udf_check
from pipelines.spec.errors import Problem, SpecError, fail, shown
from pipelines.spec.experiment import Experiment
from pipelines.spec.one_pass import rules_beside
from pipelines.spec.yaml_source import Sourced, dotted, load_text, parse_value, read_text

OVERRIDES_LABEL = "<command line>"


@dataclass(frozen=True)
class Loaded:
    spec: Experiment
    path: Path  # the experiment.yaml
    root: Path  # the project root (holds templates/, steps/)
    sourced: Sourced

    @property
    def folder(self) -> Path:
        return self.path.parent


def project_root(start: Path) -> Path:
    """The nearest folder above the spec holding templates/ and steps/; else this checkout."""
    for candidate in [start, *start.parents]:
        if fs.is_dir(candidate / "templates") and fs.is_dir(candidate / "steps"):
            return candidate
    return ROOT


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Loaded:
    path = fs.resolved(Path(path)) if fs.exists(Path(path)) else Path(path)
    label = _label(path)
    root = project_root(fs.resolved(path.parent))
    sourced = _with_base(path, label, root)
    _apply_overrides(sourced, overrides)
    try:
        spec = _validate(sourced)
    except SpecError as exc:  # one pass: the cross-field rules too, on what the schema could read
        raise SpecError(exc.problems + rules_beside(exc, sourced, lambda spec, doc: _rules(spec, doc, path, root))) from None
    problems = _rules(spec, sourced, path, root)
    if problems:
        raise SpecError(problems)
    return Loaded(spec=spec, path=path, root=root, sourced=sourced)


def _rules(spec: Experiment, sourced: Sourced, path: Path, root: Path) -> list[Problem]:
    problems = rules.check(spec, sourced)
    problems += udf_check.check(spec, path.parent, sourced)
    problems += rules_notebooks.check(spec, path.parent, sourced)
    return problems + _place_rules(spec, path, root, sourced)


def _place_rules(spec, path: Path, root: Path, doc: Sourced) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple, message: str, hint: str = "") -> None:
        file, line, col = doc.where(loc)
        problems.append(Problem(file, line, col, dotted(loc), message, hint))

    rules_paths.check(spec, root, add)
    rules_project.check(spec, path, root, add)
    return problems


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _with_base(path: Path, label: str, root: Path, chain: tuple[Path, ...] = ()) -> Sourced:
    doc = load_text(read_text(path, label), label)
    base = doc.data.pop("base", None)
    base_pos = doc.positions.pop(("base",), (label, 1, 1))
    if base is None:
        return doc
    where = {"line": base_pos[1], "column": base_pos[2], "path": "base"}
    if len(chain) > 4 or not isinstance(base, str):
        raise fail(label, "base must be one template path (nesting at most 5 deep)", **where)
    if fs.too_long(base):
        raise fail(label, f"a base path of {len(base):,} characters is not a file any file system holds", **where,
                   hint="give the template's path relative to the experiment folder or the project root")
    base_path = next((p.resolve() for p in (path.parent / base, root / base) if fs.is_file(p)), None)
    if base_path is None:
        raise fail(label, f"base template {shown(base)} not found", **where,
                   hint=f"paths are relative to the experiment folder or to {root}")
    if not base_path.is_relative_to(root.resolve()):
        raise fail(label, f"base template {shown(base)} resolves outside the project ({base_path})", **where,
                   hint="templates come from this repository (templates/ or an experiment folder), so that a "
                        "review sees every default an experiment inherits")
    seen = (*chain, path.resolve())
    if base_path in seen:
        cycle = " → ".join(p.relative_to(root.resolve()).as_posix() for p in (*seen[seen.index(base_path):], base_path))
        raise fail(label, f"base templates form a cycle: {cycle}", **where, hint="remove one base: line")
    parent = _with_base(base_path, _label(base_path), root, seen)
    return _merge(parent, doc)


def _merge(base: Sourced, top: Sourced) -> Sourced:
    """Deep-merge mappings; lists and scalars from ``top`` replace the base's."""
    positions = dict(base.positions)

    def merge(a, b, loc):
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for key, value in b.items():
                out[key] = merge(a[key], value, loc + (key,)) if key in a else value
            return out
        for stale in [k for k in positions if k[: len(loc)] == loc]:
            del positions[stale]
        return b

    data = merge(base.data, top.data, ())
    positions.update(top.positions)
    return Sourced(data=data, positions=positions)


def _apply_overrides(doc: Sourced, overrides) -> None:
    problems = []
    for index, item in enumerate(overrides, start=1):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(OVERRIDES_LABEL, 1, index, "", f"override {shown(item)} is not key=value",
                                    "e.g. train.hyperparameters.epochs=1"))
            continue
        loc = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
        node = doc.data
        for part in loc[:-1]:
            if isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
                continue
            if isinstance(node, dict):
                node = node.setdefault(part, {})
                continue
            problems.append(Problem(OVERRIDES_LABEL, 1, index, key, f"cannot descend into {shown(part)}"))
            break
        else:
            if isinstance(node, dict) or (isinstance(node, list) and isinstance(loc[-1], int) and loc[-1] < len(node)):
                node[loc[-1]] = parse_value(raw, OVERRIDES_LABEL)
                doc.positions[loc] = (OVERRIDES_LABEL, 1, index)
            else:
                problems.append(Problem(OVERRIDES_LABEL, 1, index, key, "index out of range"))
    if problems:
        raise SpecError(problems)


def _validate(doc: Sourced) -> Experiment:
    try:
        return Experiment.model_validate(doc.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        failed = SpecError(_merge_union_members([_problem(err, doc) for err in errors]))
        failed.locations = list(dict.fromkeys(_document_loc(err["loc"]) for err in errors))
        raise failed from None


VALID = "Input should be a valid "


def _merge_union_members(problems: list[Problem]) -> list[Problem]:
    """One problem per place: a value that fits no member of a union (str | int | ...) gets one line that
    lists the types it may have, not one line per member."""
    kinds: dict[tuple, list[str]] = {}
    for problem in problems:
        if problem.message.startswith(VALID):
            kinds.setdefault(_place(problem), []).append(problem.message[len(VALID):])
    out, seen = [], set()
    for problem in problems:
        if not problem.message.startswith(VALID):
            out.append(problem)
        elif _place(problem) not in seen:
            seen.add(_place(problem))
            out.append(replace(problem, message=VALID + _either(kinds[_place(problem)])))
    return out


def _place(problem: Problem) -> tuple:
    return problem.file, problem.line, problem.column, problem.path


def _either(kinds: list[str]) -> str:
    kinds = list(dict.fromkeys(kinds))
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]


def _document_loc(raw: tuple) -> tuple:
    """pydantic's error location as a path into the document (no validator or union member names)."""
    return _strip_union_tags(tuple(p for p in raw if not (isinstance(p, str) and ("[" in p or p in {"function-after"}))))


def _problem(err: dict, doc: Sourced) -> Problem:
    loc = _document_loc(err["loc"])
    file, line, col = doc.where(loc)
    message, hint = err["msg"], ""
    if err["type"] == "extra_forbidden" and loc:
        message = f"unknown key {shown(loc[-1])}"
        hint = _did_you_mean(loc)
    elif err["type"] == "missing":
        hint = "this field is required"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif err["type"] == "string_pattern_mismatch":
        message = f"{shown(err.get('input'))} does not match the required pattern"
        hint = _pattern_hint(loc)
    return Problem(file, line, col, dotted(loc), message, hint)


UNION_TAGS = {"Range", "str", "int", "float", "bool", "list", "dict", "constrained-str"}


def _strip_union_tags(loc: tuple) -> tuple:
    # pydantic names union members in locs (e.g. "Range", "str"); they are not part of the document path.
    return tuple(p for p in loc if not (isinstance(p, str) and p in UNION_TAGS))


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Experiment
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found:
            return found
    return None


def _did_you_mean(loc: tuple) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "remove it"
    names = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "allowed keys: " + ", ".join(names)


PATTERN_HINTS = {
    "name": "like EXP-0001-my-task: EXP-, four digits, a lowercase slug",
    "role": "an IAM role ARN: arn:aws:iam::123456789012:role/name",
    "bucket": "an S3 bucket name: lowercase letters, digits, dots, hyphens",
    "instance_type": "a SageMaker instance type such as ml.g5.2xlarge, or local",
}


def _pattern_hint(loc: tuple) -> str:
    key = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    return PATTERN_HINTS.get(key, "")
