"""Schema errors and cross-field rules in one pass: the rules run beside the schema's errors, on what the
schema could read (pipelines/spec/load.py calls it when the document does not validate)."""

from __future__ import annotations

import copy

from pydantic import ValidationError

from pipelines.spec.errors import Problem, SpecError
from pipelines.spec.experiment import Experiment
from pipelines.spec.yaml_source import Sourced, dotted


def rules_beside(exc: SpecError, doc: Sourced, run_rules) -> list[Problem]:
    """The cross-field problems of a document with schema errors: each wrong field is dropped (its default
    stands in) and, where the rest validates, the rules run on it. A rule about an object that held a
    dropped field is left out: it would judge the default, not what the user wrote."""
    data, dropped = copy.deepcopy(doc.data), []
    for loc in getattr(exc, "locations", ()):
        if not _drop(data, loc):
            return []  # a missing field or a wrong list item: nothing sound to check beside it
        dropped.append(loc)
    try:
        spec = Experiment.model_validate(data)
    except ValidationError:
        return []
    near = [dotted(loc[:-1]) if len(loc) > 1 else dotted(loc) for loc in dropped]
    return [p for p in run_rules(spec, Sourced(data=data, positions=doc.positions))
            if not any(p.path == n or p.path.startswith((n + ".", n + "[")) for n in near)]


def _drop(data, loc: tuple) -> bool:
    node = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and loc and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False
