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

from steps.udf import NAMES as UDF_NAMES

# The programs each kind of step runs (the launcher with them; a training job also exports, and the model
# artifact carries the serving program).
STEP_PROGRAMS = {"reconcile": ("reconcile",), "prepare": ("prepare",), "train": ("train", "export", "serve"),
                 "evaluate": ("evaluate",)}
UDF_CALL = re.compile(r"""udf\.function\(\s*["'](\w+)["']""")


def closure(steps_dir: Path, programs: tuple[str, ...]) -> list[Path]:
    """The steps/ modules the programs (and the launcher) import, transitively."""
    todo, seen = ["launcher", "__init__", *programs], set()
    while todo:
        name = todo.pop()
        path = steps_dir / f"{name}.py"
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        todo += _imported(ast.parse(path.read_text(encoding="utf-8")))
    return sorted(steps_dir / f"{name}.py" for name in seen)


def _imported(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "steps":
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("steps."):
            out.append(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out += [a.name.split(".")[1] for a in node.names if a.name.startswith("steps.")]
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
