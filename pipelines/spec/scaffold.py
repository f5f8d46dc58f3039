"""`make new-exp`: a new experiment folder from templates/new-exp (or a copy of another experiment)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from pipelines import ROOT
from pipelines.spec.errors import fail
from pipelines.spec.experiment import NAME_RE


def new_experiment(name: str, source: str | None = None, root: Path = ROOT) -> Path:
    if not re.match(NAME_RE, name) or len(name) > 48:
        raise fail("<command line>", f"{name!r} is not an experiment name", hint="EXP-, four digits, a lowercase slug")
    target = root / "experiments" / name
    if target.exists():
        raise fail(str(target), "already exists; nothing was written", hint="pick the next free EXP number")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root / "experiments"))
    try:
        if source:
            _copy(root / "experiments" / source, staging, source, name)
        else:
            _render(staging, name)
        staging.rename(target)  # all or nothing
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _render(folder: Path, name: str) -> None:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "templates" / "new-exp"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    values = {"name": name, "account": "123456789012", "bucket": "my-ml-experiments",
              "group": name.lower()[9:][:60] or "models"}
    for template in ("experiment.yaml.j2", "user_defined_funcs.py.j2"):
        (folder / template[:-3]).write_text(env.get_template(template).render(**values), encoding="utf-8")


def _copy(source: Path, folder: Path, old: str, new: str) -> None:
    if not (source / "experiment.yaml").is_file():
        raise fail(str(source), "no experiment.yaml to copy from", hint="from= takes an existing experiment folder name")
    for path in sorted(source.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            dest = folder / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    spec = folder / "experiment.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
