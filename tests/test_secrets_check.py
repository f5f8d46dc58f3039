"""A secret pasted into the spec is refused at validate, and the message never repeats it."""

from __future__ import annotations

import pytest
from conftest import MINIMAL

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.spec.secrets_check import looks_like_secret

WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HF_TOKEN = "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"


@pytest.mark.parametrize(("extra", "field", "value"), [
    ("tracking: {{wandb: {{api_key_secret: '{v}'}}}}\n", "tracking.wandb.api_key_secret", WANDB_KEY),
    ("aws: {{tags: {{owner: '{v}'}}}}\n", "aws.tags.owner", AWS_ID),
    ("aws: {{tags: {{'{v}': x}}}}\n", "aws.tags", HF_TOKEN),
    ("description: 'key is {v} for now'\n", "description", AWS_SECRET),
    ("tracking: {{wandb: {{entity: '{v}'}}}}\n", "tracking.wandb.entity", "Zx8qP2mN7vL4kR9tY6wB3cD5fG1hJ0sA"),
])
def test_secret_shaped_values_are_refused_without_being_echoed(write_spec, capsys, extra, field, value):
    with pytest.raises(SpecError) as info:
        load(write_spec(MINIMAL + extra.format(v=value)))
    text = str(info.value)
    assert f"{field}" in text and "looks like" in text and "Secrets Manager" in text
    assert value not in text


@pytest.mark.parametrize("value", [
    "Support-ticket routing, BERT-base against DistilBERT.",
    "s3://acme-raw/tickets/2026-11/",
    "snapshot 9f2c1e0b7a6d5c4b3a29180716f5e4d3c2b1a0998877665544332211ffeeddcc",  # a sha256: 64 hex
    "wandb/api-key", "arn:aws:secretsmanager:us-east-1:111122223333:secret:wandb/api-key-AbCdEf",
    "EXP-0002-bert-vs-distilbert", "experiments/EXP-0001-docstring-topics/raw/packages-and-more-words.txt",
    "team-support-ml-4711", "0 3 ? * MON *", "ml.g5.12xlarge",
])
def test_ordinary_values_are_not_mistaken_for_secrets(value):
    assert looks_like_secret(value) is None


def test_the_examples_hold_no_secrets():
    from conftest import ROOT

    for path in sorted((ROOT / "experiments").glob("EXP-*/experiment.yaml")):
        load(path)  # raises on a secret-shaped value
