"""Each step's code identity: what its programs actually run, so an edit re-runs only the steps it touches.

A step's identity hashes the steps/ modules its programs import (followed through every ``steps`` import,
those inside functions too), the experiment's other code files, and of user_defined_funcs.py everything but
the user functions those modules never call (``udf.function("name")``). It names the step's code URI
(``code/<identity>.tar.gz``, holding the whole bundle) and its SMPIPE_CODE_SHA256, both in the step's cache
key: editing load_model re-runs Train and Evaluate, not Reconcile or Prepare.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

from steps.core.udf import NAMES as UDF_NAMES

# The programs each kind of step runs (the launcher with them; a training job also exports, and the model
# artifact carries the serving program).
STEP_PROGRAMS = {"reconcile": ("reconcile",), "prepare": ("prepare",), "train": ("train", "export", "serve"),
                 "evaluate": ("evaluate",)}
UDF_CALL = re.compile(r"""udf\.function\(\s*["'](\w+)["']""")


def closure(steps_dir: Path, programs: tuple[str, ...]) -> list[Path]:
    """The steps/ modules (and their packages' __init__) the programs and the launcher import, transitively."""
    todo, seen = ["launcher", "", *programs], set()
    while todo:
        name = todo.pop()
        path = module_path(steps_dir, name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo += _package_inits(name) + _imported(ast.parse(path.read_text(encoding="utf-8")))
    return sorted(p for p in (module_path(steps_dir, n) for n in seen) if p is not None)


def module_path(steps_dir: Path, dotted: str) -> Path | None:
    """steps.<dotted> as a file: a module, or a package's __init__ ("" is steps/ itself)."""
    base = steps_dir.joinpath(*dotted.split(".")) if dotted else steps_dir
    for path in (base.with_suffix(".py") if dotted else None, base / "__init__.py"):
        if path is not None and path.is_file():
            return path
    return None


def _package_inits(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imported(tree: ast.AST) -> list[str]:
    """Every steps module an import names: ``from steps.x import y`` counts both steps.x and steps.x.y."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module == "steps" or node.module.startswith("steps.")):
            base = node.module[len("steps."):] if node.module != "steps" else ""
            out += [base] if base else []
            out += [f"{base}.{a.name}" if base else a.name for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name[len("steps."):] for a in node.names if a.name.startswith("steps.")]
    return out


def udf_part(path: Path, used: set[str]) -> str:
    """user_defined_funcs.py without the user functions this step never calls."""
    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text  # validate refuses it; the whole text is the identity meanwhile
    kept = [ast.get_source_segment(text, node) or "" for node in tree.body
            if not (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in UDF_NAMES
                    and node.name not in used)]
    return "\n".join(kept)


def identity(bundle_files: list[tuple[str, Path]], steps_dir: Path, kind: str) -> str:
    modules = closure(steps_dir, STEP_PROGRAMS[kind])
    used = {m for path in modules for m in UDF_CALL.findall(path.read_text(encoding="utf-8"))}
    h = hashlib.sha256(f"{kind}\0".encode())
    resolved = {p.resolve() for p in modules}
    for name, path in bundle_files:
        if name.startswith("steps/") and path.resolve() not in resolved:
            continue
        body = udf_part(path, used).encode() if name == "experiment/user_defined_funcs.py" else path.read_bytes()
        h.update(f"{name}\0{len(body)}\0".encode() + body)
    return h.hexdigest()
