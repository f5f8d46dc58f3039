"""Cost before launch: the arithmetic, tuning, spot, schedules, the budget cap at validate/start, unknown
prices, the expected case, and the price refresh against a recorded Pricing API answer."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT

from pipelines.cli import main
from pipelines.compile import cost
from pipelines.compile.plan import plan
from pipelines.spec.load import load

EXP2 = str(ROOT / "experiments" / "EXP-0002-bert-vs-distilbert")
EXP3 = str(ROOT / "experiments" / "EXP-0003-tuning-minilm")


def planned(spec: str, *overrides: str):
    return plan(load(spec + "/experiment.yaml", list(overrides)))


def test_worst_case_arithmetic_with_spot_training():
    items = {line.step: line for line in cost.lines(planned(EXP2))}
    assert items["Reconcile"].worst_usd == pytest.approx(24 * 0.461)
    train = items["Train-bert"]  # 2 × ml.g5.12xlarge, 10 h max runtime, spot at 30% of 7.09
    assert train.spot and train.count == 2 and train.hours == 10
    assert train.worst_usd == pytest.approx(2 * 10 * 7.09 * 0.3)
    assert cost.total(list(items.values()), "worst_usd") == pytest.approx(24 * 0.461 * 2 + 2 * 42.54 + 24 * 1.408)


def test_tuning_counts_every_trial():
    the_plan = planned(EXP3)
    tune = next(line for line in cost.lines(the_plan) if line.step.startswith("Tune-"))
    spec = the_plan.spec
    assert tune.hours == spec.tune.max_jobs * spec.resources.training.max_runtime_s / 3600


@pytest.mark.parametrize(("cron", "rate", "expected"), [
    ("0 3 ? * MON *", None, 30 / 7), ("0 */6 * * ? *", None, 120), ("15 10 L * ? *", None, 1),
    ("0 8 1,15 * ? *", None, 2), ("0 9 ? * MON-FRI *", None, 5 * 30 / 7), ("0 3 ? JAN,JUL MON#1 *", None, 2 / 12),
    (None, "1 day", 30), (None, "6 hours", 120), (None, "30 minutes", 1440),
])
def test_executions_per_month(cron, rate, expected):
    assert cost.executions_per_month(cron, rate) == pytest.approx(expected)


def test_a_missing_price_is_unknown_never_zero():
    the_plan = planned(EXP2, "resources.evaluation.instance_type=ml.r5.xlarge")
    items = cost.lines(the_plan)
    assert next(line for line in items if line.step == "Evaluate").price is None
    assert cost.total(items, "worst_usd") is None
    from pipelines.compile.cost_report import render

    text = render(the_plan)
    assert "no price" in text and "warning: no price for ml.r5.xlarge in us-east-1" in text and "$0.00" not in text


def test_expected_case_from_the_measured_throughput():
    the_plan = planned(EXP2, "budget.documents=40000")
    values = {"TrainInstanceType": "ml.p5.48xlarge", "TrainInstanceCount": 1}
    line = next(line for line in cost.lines(the_plan, values) if line.step == "Train-bert")
    rate, scaling = cost.throughput()["samples_per_second_per_gpu"]["p5"]["bert-base"], cost.throughput()["scaling"]
    assert line.expected_hours == pytest.approx(0.1 + 40000 * 0.8 * 3 / (rate["value"] * 8 * scaling["value"]) / 3600)
    assert next(line for line in cost.lines(the_plan) if line.step == "Train-bert").expected_hours is None  # g5


def test_validate_refuses_a_spec_over_its_budget(capsys):
    rc = main(["validate", EXP2, "budget.max_usd_per_execution=100"])
    err = capsys.readouterr().err
    assert rc == 2 and "budget.max_usd_per_execution: the worst case of one execution is $141.00, over the cap of " \
        "$100.00 (largest: Train-bert, 2 × ml.g5.12xlarge × 10 h = $42.54)" in err
    assert main(["validate", EXP2, "budget.max_usd_per_execution=150"]) == 0


def test_start_counts_the_instance_types_and_counts_it_is_given(capsys):
    rc = main(["start", EXP2, "budget.max_usd_per_execution=150", "--param", "TrainInstanceCount=8"])
    err = capsys.readouterr().err
    assert rc == 2 and "over the cap of $150.00" in err and "8 × ml.g5.12xlarge" in err


def test_the_cost_command_prints_the_table_and_the_month(capsys):
    assert main(["cost", EXP2]) == 0
    out = capsys.readouterr().out
    assert "Train-distilbert" in out and "$141.00" in out and "2.127 spot" in out
    assert "schedule weekly-retrain: about 4.3 executions a month → worst case $604.29 a month" in out


RECORDED = {"FormatVersion": "aws_v1", "PriceList": [json.dumps({
    "product": {"attributes": {"instanceName": "ml.m5.xlarge", "usagetype": "USE1-Train:ml.m5.xlarge",
                               "regionCode": "us-east-1"}},
    "terms": {"OnDemand": {"ABC.JRTCKXETXF": {"priceDimensions": {"ABC.JRTCKXETXF.6YS6EN2CT7": {
        "unit": "Hrs", "pricePerUnit": {"USD": "0.2310000000"}}}}}}}), json.dumps({
    "product": {"attributes": {"instanceName": "ml.m5.xlarge", "usagetype": "USE1-Host:ml.m5.xlarge"}},
    "terms": {"OnDemand": {"X": {"priceDimensions": {"Y": {"pricePerUnit": {"USD": "0.2300000000"}}}}}}})]}


def test_prices_refresh_from_a_recorded_pricing_api_answer(tmp_path):
    import boto3
    from botocore.stub import Stubber

    from pipelines.aws.prices import refresh

    table = tmp_path / "prices.json"
    shutil.copy(cost.DATA / "prices.json", table)
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    types = sorted(json.loads(table.read_text())["regions"]["us-east-1"])
    with Stubber(client) as stub:
        for instance_type in types:
            stub.add_response("get_products", RECORDED if instance_type == "ml.m5.xlarge" else {"PriceList": []})
        written, missing = refresh(table, "us-east-1", ["ml.m5.xlarge"], client)
    refreshed = json.loads(table.read_text())
    assert written == 1 and refreshed["regions"]["us-east-1"]["ml.m5.xlarge"] == 0.231  # the training product
    assert "ml.p5.48xlarge" in missing and refreshed["regions"]["us-east-1"]["ml.p5.48xlarge"] == 113.07
    assert "Pricing API" in refreshed["_source"]


def test_the_throughput_table_is_what_its_result_files_say():
    table = cost.throughput()
    for entry in [table["scaling"], *(m for family in table["samples_per_second_per_gpu"].values() for m in family.values())]:
        data = json.loads((ROOT / entry["file"]).read_text(encoding="utf-8"))
        for key in entry["key"]:
            data = data[key]
        assert data == entry["value"], entry
    assert 0 < table["scaling"]["value"] < 1 and cost.effective_gpus(1) == 1 and cost.effective_gpus(8) < 8


def test_validate_refuses_a_schedule_whose_values_lift_it_over_the_budget(capsys):
    over = 'schedules.0.parameters={DataSource: "s3://acme-raw/tickets/latest/", TrainInstanceCount: 8}'
    rc = main(["validate", EXP2, "budget.max_usd_per_execution=150", over])
    err = capsys.readouterr().err
    assert rc == 2 and "schedules[0].parameters: with these values one execution of weekly-retrain costs up to" in err
    assert err.startswith("<command line>:1:")  # where the values were written (here: an override)
    assert main(["validate", EXP2, "budget.max_usd_per_execution=150"]) == 0


def test_validate_refuses_epochs_the_job_cannot_finish_in_its_max_runtime(capsys):
    p5 = ["resources.training.instance_type=ml.p5.48xlarge", "resources.training.max_runtime_s=3600"]
    rc = main(["validate", EXP2, *p5, "budget.documents=50000000"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "train.hyperparameters.epochs: 3 epochs of 50,000,000 documents on 2 × ml.p5.48xlarge take about" in err
    assert "over resources.training.max_runtime_s (3,600 s): SageMaker would stop the job first" in err
    assert main(["validate", EXP2, *p5, "budget.documents=40000"]) == 0
    capsys.readouterr()
    rc = main(["validate", EXP3, *p5, "budget.documents=400000", "tune.ranges.epochs=1->40"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "tune.ranges.epochs: 40 epochs of 400,000 documents" in err
    assert main(["validate", EXP3, *p5, "budget.documents=400000"]) == 0  # without the range: 3 epochs fit
    assert main(["validate", EXP2, "budget.documents=50000000"]) == 0  # g5: no measured throughput, no estimate
