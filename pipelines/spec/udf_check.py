"""Static check of an experiment's user_defined_funcs.py (parsed with ast, never imported)."""

from __future__ import annotations

import ast
from pathlib import Path

from pipelines.spec import fs
from pipelines.spec.errors import Problem
from pipelines.spec.experiment import Experiment
from pipelines.spec.yaml_source import Sourced

FILE = "user_defined_funcs.py"

# name → (minimum positional parameters, the step that calls it)
FUNCTIONS = {
    "reconcile_data": (3, "reconcile"),
    "get_dataset_features": (1, "prepare"),
    "encode_data": (3, "prepare"),
    "load_model": (3, "train"),
    "ordered_model_input_keys": (1, "export"),
}


def check(spec: Experiment, folder: Path, doc: Sourced) -> list[Problem]:
    path = folder / FILE
    if not fs.is_file(path):
        return []
    label = str(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=label)
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        line = getattr(exc, "lineno", 1) or 1
        return [Problem(label, line, 1, "", f"cannot parse: {exc}", "fix the Python syntax")]
    problems = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in FUNCTIONS:
            problems += _check_function(node, label, spec)
    return problems


def _check_function(node: ast.FunctionDef, label: str, spec: Experiment) -> list[Problem]:
    needed, step = FUNCTIONS[node.name]
    enabled = {"reconcile": spec.steps.reconcile, "prepare": True, "train": True, "export": True}[step]
    where = (label, node.lineno, node.col_offset + 1, node.name)
    if isinstance(node, ast.AsyncFunctionDef):
        return [Problem(*where, "must be a plain def, not async")]
    if _is_stub(node.body):
        if not enabled:
            return []
        return [Problem(*where, "is a stub (body is only pass, ... or raise NotImplementedError)",
                        f"write it, or delete it to use the built-in default ({step} step calls it)")]
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    if positional < needed and args.vararg is None:
        return [Problem(*where, f"takes {positional} positional parameters, the {step} step passes {needed}",
                        "see templates/new-exp/user_defined_funcs.py.j2 for the signatures")]
    return []


def _is_stub(body: list[ast.stmt]) -> bool:
    statements = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                          and isinstance(s.value.value, str))]
    if not statements:
        return True
    if len(statements) != 1:
        return False
    only = statements[0]
    if isinstance(only, ast.Pass):
        return True
    if isinstance(only, ast.Expr) and isinstance(only.value, ast.Constant) and only.value.value is Ellipsis:
        return True
    if isinstance(only, ast.Raise) and only.exc is not None:
        exc = only.exc.func if isinstance(only.exc, ast.Call) else only.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False
