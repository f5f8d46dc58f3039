"""The five user functions: the experiment's user_defined_funcs.py where written, defaults otherwise."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from steps.core import defaults

NAMES = ("reconcile_data", "get_dataset_features", "encode_data", "load_model", "ordered_model_input_keys")


def _user_module():
    folder = os.environ.get("SMPIPE_EXPERIMENT_DIR")
    path = Path(folder) / "user_defined_funcs.py" if folder else None
    if path is None or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("user_defined_funcs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def function(name: str):
    """The user's function if the experiment defines it, else the built-in default."""
    if name not in NAMES:
        raise KeyError(name)
    module = _user_module()
    return getattr(module, name, None) or getattr(defaults, name)
