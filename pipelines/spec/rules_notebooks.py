"""Notebook steps, checked before launch: the file exists and is a notebook, a parameters cell exists when
parameters are given and sets every parameter named, `after` names a step the pipeline has, `$Name` values
name pipeline parameters, the instance type runs training jobs (a notebook job is one) and the image is an
ECR image of the jobs' region."""

from __future__ import annotations

import ast
import difflib
import keyword
import re
from pathlib import Path

from pipelines.spec import fs, step_graph
from pipelines.spec.errors import Problem
from pipelines.spec.experiment import Experiment
from pipelines.spec.instance_types import api_enum
from pipelines.spec.parameters import LOCAL_INSTANCE_TYPES, declare
from pipelines.spec.sections import NOTEBOOK_IMAGES
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


# What the step itself passes a notebook (builders/notebooks.py): a parameter of the same name would replace it.
RUN_INPUTS = ("prepared_uri", "evaluation_uri", "best_model_uri", "model_uri")
ECR_IMAGE_RE = re.compile(r"^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*"
                          r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})?$")


def cell_variables(notebook) -> set[str] | None:
    """The names the cells tagged 'parameters' assign; None when a cell is not plain Python (magics)."""
    names: set[str] = set()
    for cell in notebook.cells:
        if cell.get("cell_type") != "code" or "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def _settings(spec: Experiment, i: int, nb, add) -> None:
    """What SageMaker checks when the notebook job starts, said at validate instead."""
    training = api_enum("training")
    if nb.instance_type not in training and nb.instance_type not in LOCAL_INSTANCE_TYPES:
        close = difflib.get_close_matches(nb.instance_type, training, n=1)
        add(("notebooks", i, "instance_type"), f"{nb.instance_type} is not an instance type SageMaker runs training "
            "jobs on (a notebook job is a training job)", f"did you mean {close[0]}?" if close else "e.g. ml.m5.xlarge")
    region = spec.aws.region
    if nb.image_uri is None:
        if region not in NOTEBOOK_IMAGES:
            add(("notebooks", i, "image_uri"), f"no SageMaker Distribution image is known here for {region}",
                "set image_uri to the sagemaker-distribution image of that region (Studio lists it)")
        return
    image = ECR_IMAGE_RE.match(nb.image_uri)
    if image is None:
        add(("notebooks", i, "image_uri"), f"{nb.image_uri!r} is not an ECR image URI",
            "<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@sha256:digest]")
    elif image.group(1) != region:
        add(("notebooks", i, "image_uri"), f"the image is in {image.group(1)}, the jobs run in {region}: SageMaker "
            "pulls images from ECR in the job's own region", "use the image of that region")


def _parameter_names(i: int, nb, notebook, add) -> None:
    variables = cell_variables(notebook) if notebook is not None else None
    for key in nb.parameters:
        loc = ("notebooks", i, "parameters", key)
        if not key.isidentifier() or keyword.iskeyword(key):
            add(loc, f"{key!r} is not a Python name, so no notebook variable can receive it",
                "letters, digits and _, not starting with a digit")
        elif key in RUN_INPUTS:
            add(loc, f"{key} is what the step passes the notebook (the run's own data); a parameter of that name "
                "would replace it", "choose another name; read the run's data from " + key)
        elif variables is not None and key not in variables:
            known = ", ".join(sorted(variables)) or "none"
            add(loc, f"{key} is set by no line of the cell tagged 'parameters' (it sets: {known})",
                "add it to that cell with its default, or fix the name")


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
        _settings(spec, i, nb, add)
        if nb.after not in steps:
            add(("notebooks", i, "after"), f"{nb.after!r} is not a step of this pipeline", "one of: " + ", ".join(steps))
        for key, value in nb.parameters.items():
            if isinstance(value, str) and value.startswith("$") and value[1:] not in declared:
                add(("notebooks", i, "parameters", key), f"{value} names no pipeline parameter",
                    "one of: " + ", ".join("$" + n for n in declared))
        path = fs.resolved(folder / nb.path)
        if not path.is_relative_to(folder.resolve()) or not fs.is_file(path):
            add(("notebooks", i, "path"), f"{nb.path} is not a file of the experiment folder",
                "paths are relative to the folder of experiment.yaml (it travels in the code bundle)")
            continue
        notebook, why = parameters_cell(path)
        if notebook is None:
            add(("notebooks", i, "path"), f"{nb.path}: {why}", "open and save it again in Jupyter")
        elif nb.parameters and not any("parameters" in c.get("metadata", {}).get("tags", []) for c in notebook.cells):
            add(("notebooks", i, "parameters"), f"{nb.path} has no cell tagged 'parameters' to receive them",
                "tag the cell that sets the defaults with 'parameters' (View → Cell toolbar → Tags)")
            continue
        _parameter_names(i, nb, notebook, add)
    return problems
