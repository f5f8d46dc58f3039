"""Golden definitions: the committed expected JSON of every example experiment."""

from __future__ import annotations

from pathlib import Path

from pipelines import ROOT

GOLDEN_DIR = ROOT / "tests" / "golden"


def example_specs() -> list[Path]:
    return sorted((ROOT / "experiments").glob("EXP-*/experiment.yaml"))


def render(spec: Path) -> str:
    from pipelines.compile.bundle import PathDigests
    from pipelines.compile.definition import definition
    from pipelines.compile.plan import plan
    from pipelines.spec.load import load

    return definition(plan(load(spec), PathDigests(ROOT)))  # local folders by path: see PathDigests


def regenerate() -> list[Path]:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in example_specs():
        target = GOLDEN_DIR / f"{spec.parent.name}.json"
        target.write_text(render(spec), encoding="utf-8")
        written.append(target)
    return written
