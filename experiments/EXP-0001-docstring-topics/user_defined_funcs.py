"""EXP-0001's own data: docstrings of installed packages, labelled by package.

Only reconcile_data is written here; the other four functions fall back to the built-in
text-classification defaults (steps/core/defaults.py).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
from pathlib import Path

MIN_CHARS = 60
PER_LABEL = 200  # balanced classes: the packages differ tenfold in docstring count


def reconcile_data(raw_dir, text_column, label_column):
    """Yield {"text", "label", "source"} for every docstring of the packages listed in packages.txt.

    Files are parsed with ast, never imported, so harvesting runs no package code.
    """
    manifest = Path(raw_dir) / "packages.txt"
    for line in manifest.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        label, _, package = (part.strip() for part in line.partition(":"))
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"{manifest}: package {package!r} is not installed")
        root = Path(spec.origin).parent
        found = []
        for path in sorted(root.rglob("*.py")):
            if {"tests", "test", "_vendor", "externals"} & set(path.relative_to(root).parts):
                continue
            found += _docstrings(path, root, label, package)
        # A fixed, content-based sample: the same documents on every machine with the same versions.
        found.sort(key=lambda r: hashlib.sha256(r["text"].encode()).hexdigest())
        yield from found[:PER_LABEL]


def _docstrings(path, root, label, package):
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node)
            if text and len(text) >= MIN_CHARS:
                # The package's own name would give the answer away.
                text = re.sub(package, "<package>", re.sub(r"\s+", " ", text), flags=re.IGNORECASE)
                line = getattr(node, "lineno", 1)
                out.append({"text": text, "label": label, "source": f"{package}/{path.relative_to(root)}:{line}"})
    return out
