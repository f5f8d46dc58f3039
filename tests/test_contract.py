"""The compiler and the step programs agree on the container contract."""

from __future__ import annotations

import json
import re

from conftest import ROOT

from pipelines.compile.golden import GOLDEN_DIR
from steps import contract, evaluate, prepare, reconcile, train


def all_steps():
    defn = json.loads((GOLDEN_DIR / "EXP-0002-bert-vs-distilbert.json").read_text())
    steps = list(defn["Steps"])
    for step in defn["Steps"]:
        steps += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
    return steps


def test_metric_lines_parse_with_the_compiled_regexes():
    for item in contract.metric_definitions():
        line = contract.metric_line(item["Name"], 0.123456)
        assert float(re.search(item["Regex"], f"noise {line} noise").group(1)) == 0.123456
        assert re.search(item["Regex"], contract.metric_line("other:thing", 1.0)) is None


def test_processing_paths_in_the_definition_are_the_programs_defaults():
    used = set()
    for step in all_steps():
        if step["Type"] != "Processing":
            continue
        args = step["Arguments"]
        used |= {i["S3Input"]["LocalPath"] for i in args["ProcessingInputs"]}
        used |= {o["S3Output"]["LocalPath"] for o in args["ProcessingOutputConfig"]["Outputs"]}
        program = args["AppSpecification"]["ContainerArguments"][0]
        assert program in ("reconcile", "prepare", "evaluate")
    assert {contract.PROC_CODE, contract.PROC_RAW, contract.PROC_RECONCILED, contract.PROC_PREPARED,
            contract.OUT_RECONCILED, contract.OUT_PREPARED, contract.OUT_EVALUATION, contract.OUT_BEST_MODEL} <= used
    assert f"{contract.PROC_MODELS}/bert" in used


def test_program_arguments_are_accepted_by_the_programs():
    parsers = {"reconcile": reconcile.parse_args, "prepare": prepare.parse_args, "evaluate": evaluate.parse_args}
    for step in all_steps():
        if step["Type"] == "Processing":
            program, *argv = step["Arguments"]["AppSpecification"]["ContainerArguments"]
            parsers[program]([a if isinstance(a, str) else "from-a-parameter" for a in argv])  # exits on unknown flags


def test_training_hyperparameters_are_known_to_the_training_program():
    for step in all_steps():
        if step["Type"] == "Training":
            for key in step["Arguments"]["HyperParameters"]:
                assert key in train.HYPERPARAMETERS or key in ("max_length", "long_documents", "stride"), key
            channels = [c["ChannelName"] for c in step["Arguments"]["InputDataConfig"]]
            assert channels[:2] == [contract.CHANNEL_CODE, contract.CHANNEL_TRAIN]


def test_spec_hyperparameters_mirror_the_training_program():
    from pipelines.spec.experiment import HYPERPARAMETER_NAMES

    assert set(HYPERPARAMETER_NAMES) <= set(train.HYPERPARAMETERS)


def test_local_maps_opt_ml(monkeypatch, tmp_path):
    monkeypatch.setenv(contract.OPT_ML_ENV, str(tmp_path))
    assert contract.local(contract.PROC_RAW) == tmp_path / "processing/input/raw"
    assert contract.local("/elsewhere/x") == ROOT.anchor / __import__("pathlib").Path("elsewhere/x")
