"""What every command module shares: the spec argument and loading a plan from it."""

from __future__ import annotations

import argparse
from pathlib import Path


def spec_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("spec", help="path to experiment.yaml (or an experiment folder)")
    p.add_argument("overrides", nargs="*", help="key=value overrides with dotted paths, e.g. models.0.max_length=128")
    return p


def spec_path(raw: str) -> Path:
    path = Path(raw)
    return path / "experiment.yaml" if path.is_dir() else path


def load_plan(args):
    from pipelines.compile.plan import plan
    from pipelines.spec.load import load

    return plan(load(spec_path(args.spec), args.overrides))


def command(sub, name: str, text: str, run, spec: bool = True) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text, description=text)
    if spec:
        spec_args(p)
    p.set_defaults(run=run)
    return p
