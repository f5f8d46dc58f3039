"""YAML 1.1 surprises and names SageMaker refuses: `epochs: 1:30` is not 90 and `010` is not 8 (numbers by
YAML 1.2's rules); a name with non-ASCII digits, an aws: tag key or the tag deploy reads are refused at their
line; a path no file system holds is a clean error wherever the spec names it."""

from __future__ import annotations

import pytest

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load
from pipelines.spec.yaml_source import load_text

HEAD = ("name: EXP-0042-minimal\nregister: {group: minimal-group}\ndata: {source: 's3://bucket-a/raw/'}\n"
        "models:\n  - {name: bert, source: 's3://bucket-a/models/bert/'}\n")


def problems_of(path) -> list:
    with pytest.raises(SpecError) as info:
        load(path)
    return info.value.problems


@pytest.mark.parametrize("written,read", [("1:30", "1:30"), ("1:30.5", "1:30.5"), ("1_000", "1_000"),
                                          ("010", 10), ("12", 12), ("-3", -3), ("0x1F", 31), ("1.5", 1.5)])
def test_numbers_are_read_by_yaml_1_2_rules(written, read):
    assert load_text(f"v: {written}\n", "x.yaml").data["v"] == read


def test_a_sexagesimal_epochs_is_refused_at_its_line_not_read_as_90(write_spec):
    problems = problems_of(write_spec(HEAD + "train: {hyperparameters: {epochs: 1:30}}\n"))
    hit = next(p for p in problems if p.path == "train.hyperparameters.epochs")
    assert hit.line == 6 and "integer" in hit.message


@pytest.mark.parametrize("text,field,words", [
    (HEAD.replace("EXP-0042", "EXP-\u0661\u0662\u0663\u0664"), "name", "does not match the required pattern"),
    (HEAD + "aws: {tags: {'aws:team': ml}}\n", "aws.tags.aws:team", "reserved for AWS"),
    (HEAD + "aws: {tags: {'AWS:cost': x}}\n", "aws.tags.AWS:cost", "reserved for AWS"),
    (HEAD + "aws: {tags: {'smpipe:experiment': EXP-0001-other}}\n", "aws.tags.smpipe:experiment", "set from name"),
    (HEAD + "aws: {tags: {team: 'a;b'}}\n", "aws.tags.team", "AWS allows only"),
    (HEAD + "aws: {role: 'arn:aws:iam::\u0661\u0661\u0661\u0661\u0662\u0662\u0662\u0662\u0663\u0663\u0663\u0663:role/x'}\n",
     "aws.role", "does not match the required pattern"),
])
def test_names_and_tags_sagemaker_refuses_are_refused_at_their_line(write_spec, text, field, words):
    problems = problems_of(write_spec(text))
    hit = next((p for p in problems if p.path == field), None)
    assert hit is not None and words in hit.message, [str(p) for p in problems]


def test_unicode_tag_values_aws_allows_pass(write_spec):
    load(write_spec(HEAD + "aws: {tags: {équipe: 'données ml', cost-center: 'a/b=c+d@e'}}\n"))


@pytest.mark.parametrize("field_text,field", [
    ("notebooks:\n  - {name: nb, path: '" + "n" * 5000 + ".ipynb'}\n", "notebooks[0].path"),
    ("notebooks:\n  - {name: nb, path: '" + "d/" * 600 + "x.ipynb'}\n", "notebooks[0].path"),
])
def test_a_path_no_file_system_holds_is_a_clean_error(write_spec, field_text, field):
    problems = problems_of(write_spec(HEAD + field_text))
    assert any(p.path == field for p in problems), [str(p) for p in problems]


def test_a_spec_path_no_file_system_holds_is_a_clean_error():
    with pytest.raises(SpecError, match="file not found"):
        load("x" * 5000 + "/experiment.yaml")


@pytest.mark.parametrize("raw", ["\u0661->\u0663", "1_0->20", "1e-4->\u0663e-3"])
def test_a_range_written_with_other_than_ascii_digits_is_refused(raw):
    from pipelines.spec import ranges

    with pytest.raises(ValueError, match="is not 'low->high' with numbers"):
        ranges.parse("epochs", raw)
