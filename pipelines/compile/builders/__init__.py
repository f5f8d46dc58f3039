"""Step builders, one small function per step kind: each takes the build context and its node of the step
graph (pipelines/spec/step_graph.py) and returns the SDK step. The graph says which steps exist and in which
order they are built; this registry says which function builds a kind."""

from pipelines.compile.builders.data import build_prepare, build_reconcile
from pipelines.compile.builders.evaluation import build_evaluate, build_fail, build_gate, build_register
from pipelines.compile.builders.notebooks import build_notebook
from pipelines.compile.builders.serving import build_best_model, build_transform
from pipelines.compile.builders.training import build_training, build_tuning

REGISTRY = {
    "reconcile": build_reconcile,
    "prepare": build_prepare,
    "train": build_training,
    "tune": build_tuning,
    "evaluate": build_evaluate,
    "register": build_register,
    "best_model": build_best_model,
    "transform": build_transform,
    "fail": build_fail,
    "gate": build_gate,
    "notebook": build_notebook,
}

__all__ = ["REGISTRY"]
