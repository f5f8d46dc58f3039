"""Loading good specs: defaults, base templates, overrides, positions."""

from __future__ import annotations

from conftest import MINIMAL, ROOT

from pipelines.spec.experiment import Experiment
from pipelines.spec.load import load


def test_minimal_spec_gets_defaults(write_spec):
    spec = load(write_spec()).spec
    assert spec.name == "EXP-0042-minimal"
    assert spec.training and not spec.tuning
    assert spec.train.hyperparameters.epochs == 3
    assert spec.resources.training.instance_type == "ml.g5.2xlarge"
    assert spec.data.splits.train == 0.8


def test_base_template_is_merged_and_overridden(write_spec):
    text = MINIMAL + "base: templates/text-classification.yaml\ntrain: {hyperparameters: {epochs: 7}}\n"
    spec = load(write_spec(text)).spec
    assert spec.train.hyperparameters.epochs == 7  # from the experiment
    assert spec.train.hyperparameters.learning_rate == 3e-5  # from the template
    assert spec.resources.processing.instance_type == "ml.m5.2xlarge"  # template-only value


def test_overrides_are_typed_and_dotted(write_spec):
    loaded = load(write_spec(), ["train.hyperparameters.epochs=1", "models.0.max_length=64",
                                 "aws.network_isolation=true", "gate.threshold=0.7"])
    spec = loaded.spec
    assert spec.train.hyperparameters.epochs == 1
    assert spec.models[0].max_length == 64
    assert spec.aws.network_isolation is True
    assert spec.gate.threshold == 0.7


def test_examples_load():
    for path in sorted((ROOT / "experiments").glob("EXP-*/experiment.yaml")):
        assert isinstance(load(path).spec, Experiment), path


def test_compact_and_structured_ranges(write_spec):
    text = MINIMAL + """steps: {tune: true}
tune:
  ranges:
    learning_rate: "1e-5->5e-5"
    batch_size: "16,32"
    epochs: "1->4"
    warmup_ratio: {min: 0.0, max: 0.2, scaling: Linear}
    weight_decay: [0.0, 0.01]
"""
    parsed = load(write_spec(text)).spec.tune.parsed_ranges()
    assert parsed["learning_rate"].kind == "continuous" and parsed["learning_rate"].min == 1e-5
    assert parsed["batch_size"].values == ("16", "32")
    assert parsed["epochs"].kind == "integer"
    assert parsed["warmup_ratio"].scaling == "Linear"
    assert parsed["weight_decay"].kind == "categorical"


def test_udf_with_real_functions_is_accepted(write_spec):
    udf = "def encode_data(batch, tokenizer, model):\n    return tokenizer(batch['text'])\n"
    assert load(write_spec(udf=udf)).spec.name == "EXP-0042-minimal"
