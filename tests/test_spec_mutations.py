"""Every key of the three examples, set to each class of wrong value a new user writes: the spec is refused
with problems that name the file and line, or it is accepted and the (key, class) is one HARMLESS lists with
its reason. Never a traceback. A rule that starts to accept a new mutation fails here until it is triaged."""

from __future__ import annotations

import copy
import fnmatch
import shutil

import pytest
import yaml
from conftest import ROOT

from pipelines.compile.plan import plan
from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.spec.rules_paths import DATA_ROOTS_ENV

WRONG = {"none": None, "empty": "", "negative": -1, "zero": 0, "huge": 10**12, "long": "x" * 5000, "list": [],
         "map": {}, "true": True, "sexagesimal": "1:30", "arabic-digits": "\u0661\u0662", "dotdot": "../../../etc",
         "fraction": 0.5, "nan": float("nan"), "inf": float("inf"), "nul": "a\x00b", "escape": "a\x1b[31mb"}

# (key pattern, classes, why it is harmless when accepted)
HARMLESS = [
    ("description", "*", "free text, shown in Studio"),
    ("aws.tags.*", "empty sexagesimal arabic-digits dotdot", "a tag value AWS allows"),
    ("notebooks.*.parameters.*", "*", "a notebook parameter is text the notebook reads as it likes"),
    ("data.text", "sexagesimal arabic-digits dotdot", "a column name"),
    ("data.label", "sexagesimal arabic-digits dotdot", "a column name"),
    ("data.source", "sexagesimal arabic-digits", "a folder of the project; staging says when it is missing"),
    ("transform.source", "sexagesimal arabic-digits", "as data.source"),
    ("tracking.wandb.project", "arabic-digits none", "a project name wandb allows; none: the experiment name"),
    ("tracking.wandb.api_key_secret", "dotdot none", "a secret name Secrets Manager allows; none: no key"),
    ("base", "none", "a spec without a template: every default from the schema"),
    ("aws.kms_key", "none", "no key: SageMaker's own encryption"),
    ("resources.gpus", "none true", "none: decided by the instance type; true on a GPU instance"),
    ("resources.training.max_wait_s", "none", "the default wait"),
    ("resources.training.spot", "true", "a valid choice"),
    ("steps.tune", "true", "a valid choice where tune: is given"),
    ("gate.threshold", "zero fraction", "a threshold in [0, 1]"),
    ("*learning_rate", "fraction", "a learning rate in (0, 1)"),
    ("tune.ranges.warmup_ratio.*", "zero fraction", "a ratio in [0, 1]"),
]


def harmless(key: str, cls: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) and (classes == "*" or cls in classes.split())
               for pattern, classes, _ in HARMLESS)


def leaves(node, loc=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*loc, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, (*loc, i))
    else:
        yield loc


def mutated(raw: dict, loc: tuple, value) -> dict:
    out = copy.deepcopy(raw)
    node = out
    for part in loc[:-1]:
        node = node[part]
    node[loc[-1]] = value
    return out


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "experiments").iterdir()))
def test_every_mutation_of_an_example_is_refused_at_its_line_or_harmless(tmp_path, example, monkeypatch):
    monkeypatch.delenv(DATA_ROOTS_ENV, raising=False)  # a folder outside the project must be refused, as for a user
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "steps").mkdir()
    folder = tmp_path / "experiments" / example
    shutil.copytree(ROOT / "experiments" / example, folder)
    spec = folder / "experiment.yaml"
    raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
    accepted, unclean, refused = [], [], 0
    for loc in list(leaves(raw)):
        key = ".".join(map(str, loc))
        for cls, value in WRONG.items():
            spec.write_text(yaml.safe_dump(mutated(raw, loc, value), sort_keys=False, allow_unicode=True), "utf-8")
            try:
                plan(load(spec))
            except SpecError as exc:
                refused += 1
                unclean += [(key, cls, str(p)) for p in exc.problems if not p.file.endswith(".yaml") or p.line < 1]
                continue
            except Exception as exc:  # noqa: BLE001 - what the test is for: any other exception is a traceback
                unclean.append((key, cls, f"{type(exc).__name__}: {exc}"[:300]))
                continue
            if not harmless(key, cls):
                accepted.append((key, cls))
    assert not unclean, unclean
    assert not accepted, f"accepted and not triaged as harmless: {accepted}"
    assert refused > 200  # the mutations ran and most were refused
