"""Step builders, one small function per step kind, run in this order (the registry)."""

from pipelines.compile.builders.data import build_prepare, build_reconcile
from pipelines.compile.builders.evaluation import build_evaluate, build_gate, build_register
from pipelines.compile.builders.notebooks import build_notebooks
from pipelines.compile.builders.serving import build_best_model, build_transform
from pipelines.compile.builders.training import build_training, build_tuning

# Order matters: each builder reads the steps the earlier ones registered in the context.
REGISTRY = (
    ("reconcile", build_reconcile),
    ("prepare", build_prepare),
    ("train", build_training),
    ("tune", build_tuning),
    ("evaluate", build_evaluate),
    ("register", build_register),
    ("best_model", build_best_model),
    ("transform", build_transform),
    ("gate", build_gate),
    ("notebooks", build_notebooks),
)

__all__ = ["REGISTRY"]
