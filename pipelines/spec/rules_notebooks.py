"""Notebook steps, checked before launch: the file exists and is a notebook, a parameters cell exists when
parameters are given, `after` names a step the pipeline has, `$Name` values name pipeline parameters."""

from __future__ import annotations

from pathlib import Path

from pipelines.spec import step_graph
from pipelines.spec.errors import Problem
from pipelines.spec.experiment import Experiment
from pipelines.spec.parameters import declare
from pipelines.spec.yaml_source import Sourced, dotted


def parameters_cell(path: Path) -> tuple[object | None, str]:
    """(the notebook, or None with why it cannot be read)."""
    import nbformat

    try:
        notebook = nbformat.read(str(path), as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for a bad file
        return None, f"not a valid notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:150]})"
    return notebook, ""


def check(spec: Experiment, folder: Path, doc: Sourced) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple, message: str, hint: str = "") -> None:
        file, line, col = doc.where(loc)
        problems.append(Problem(file, line, col, dotted(loc), message, hint))

    steps, declared, seen = step_graph.build(spec).after_names(), declare(spec, spec.data.source), set()
    for i, nb in enumerate(spec.notebooks):
        if nb.name in seen:
            add(("notebooks", i, "name"), f"notebook name {nb.name!r} is used twice")
        seen.add(nb.name)
        if nb.after not in steps:
            add(("notebooks", i, "after"), f"{nb.after!r} is not a step of this pipeline", "one of: " + ", ".join(steps))
        for key, value in nb.parameters.items():
            if isinstance(value, str) and value.startswith("$") and value[1:] not in declared:
                add(("notebooks", i, "parameters", key), f"{value} names no pipeline parameter",
                    "one of: " + ", ".join("$" + n for n in declared))
        path = (folder / nb.path).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            add(("notebooks", i, "path"), f"{nb.path} is not a file of the experiment folder",
                "paths are relative to the folder of experiment.yaml (it travels in the code bundle)")
            continue
        notebook, why = parameters_cell(path)
        if notebook is None:
            add(("notebooks", i, "path"), f"{nb.path}: {why}", "open and save it again in Jupyter")
        elif nb.parameters and not any("parameters" in c.get("metadata", {}).get("tags", []) for c in notebook.cells):
            add(("notebooks", i, "parameters"), f"{nb.path} has no cell tagged 'parameters' to receive them",
                "tag the cell that sets the defaults with 'parameters' (View → Cell toolbar → Tags)")
    return problems
