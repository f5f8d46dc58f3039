"""Well-formed YAML with values AWS or the scheduler would refuse later: refused at validate, every one
with file:line:column, the field and what is wrong; valid crons and rates are never refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_spec_invalid import spec

from pipelines.spec.cron import check_cron, check_rate
from pipelines.spec.errors import SpecError
from pipelines.spec.load import load

ROLE = "arn:aws:iam::111122223333:role/s"
SCHED = f"aws: {{scheduler_role: '{ROLE}'}}\n"


def sched(**fields) -> str:
    body = ", ".join(f"{k}: {v}" for k, v in {"name": "n", **fields}.items())
    return spec(SCHED + f"schedules: [{{{body}}}]\n")


CASES = [  # (id, extra spec text, expected substring, line)
    # cron, field by field
    ("cron-minute-60", sched(cron="'60 3 ? * MON *'"), "minutes '60': 60 is outside 0-59", 7),
    ("cron-hour-24", sched(cron="'0 24 ? * MON *'"), "hours '24': 24 is outside 0-23", 7),
    ("cron-dom-32", sched(cron="'0 3 32 * ? *'"), "day-of-month '32': 32 is outside 1-31", 7),
    ("cron-dom-0", sched(cron="'0 3 0 * ? *'"), "day-of-month '0': 0 is outside 1-31", 7),
    ("cron-month-13", sched(cron="'0 3 1 13 ? *'"), "month '13': 13 is outside 1-12", 7),
    ("cron-month-name", sched(cron="'0 3 1 JANX ? *'"), "'JANX' is not a value (1-12", 7),
    ("cron-dow-8", sched(cron="'0 3 ? * 8 *'"), "day-of-week '8': 8 is outside 1-7", 7),
    ("cron-dow-name", sched(cron="'0 3 ? * MOM *'"), "'MOM' is not a value (1-7", 7),
    ("cron-year-1969", sched(cron="'0 3 ? * MON 1969'"), "year '1969': 1969 is outside 1970-2199", 7),
    ("cron-year-2200", sched(cron="'0 3 ? * MON 2200'"), "2200 is outside 1970-2199", 7),
    ("cron-step-0", sched(cron="'*/0 3 ? * MON *'"), "step /0 must be a whole number from 1 to 59", 7),
    ("cron-step-text", sched(cron="'0/x 3 ? * MON *'"), "step /x must be", 7),
    ("cron-range-end", sched(cron="'0 8-25 ? * MON *'"), "25 is outside 0-23", 7),
    ("cron-list-item", sched(cron="'0,15,75 3 ? * MON *'"), "75 is outside 0-59", 7),
    ("cron-both-question", sched(cron="'0 3 ? * ? *'"), "exactly one of day-of-month and day-of-week", 7),
    ("cron-no-question", sched(cron="'0 3 1 * MON *'"), "exactly one of day-of-month and day-of-week", 7),
    ("cron-question-in-hours", sched(cron="'0 ? 1 * ? *'"), "'?' only stands in a day field", 7),
    ("cron-five-fields", sched(cron="'0 3 * * ?'"), "has 6 fields", 7),
    ("cron-nearest-weekday", sched(cron="'0 3 32W * ? *'"), "outside 1-31", 7),
    ("cron-nth-weekday", sched(cron="'0 3 ? * 2#6 *'"), "'day#n' takes a weekday", 7),
    ("cron-nth-weekday-name", sched(cron="'0 3 ? * XYZ#2 *'"), "XYZ is not a weekday", 7),
    # rate
    ("rate-zero", sched(rate="'0 days'"), "at least 1", 7),
    ("rate-singular-plural", sched(rate="'5 day'"), "EventBridge wants '5 days'", 7),
    ("rate-plural-singular", sched(rate="'1 hours'"), "EventBridge wants '1 hour'", 7),
    ("rate-unit", sched(rate="'2 weeks'"), "a rate is 'N minutes'", 7),
    ("rate-fraction", sched(rate="'1.5 hours'"), "a rate is 'N minutes'", 7),
    # time zones
    ("tz-unknown", sched(cron="'0 3 ? * MON *'", timezone="Europe/Berln"), "did you mean 'Europe/Berlin'?", 7),
    ("tz-abbreviation", sched(cron="'0 3 ? * MON *'", timezone="PDT"), "'PDT' is not an IANA time zone", 7),
    ("tz-offset", sched(cron="'0 3 ? * MON *'", timezone="'+02:00'"), "is not an IANA time zone", 7),
    # S3 buckets and keys
    ("bucket-double-dot", spec("aws: {bucket: my..bucket}\n"), "no two dots in a row", 6),
    ("bucket-dot-hyphen", spec("aws: {bucket: my.-bucket}\n"), "no dot next to a hyphen", 6),
    ("bucket-ip", spec("aws: {bucket: 192.168.10.20}\n"), "cannot look like an IP address", 6),
    ("bucket-xn-prefix", spec("aws: {bucket: xn--bucket}\n"), "starting with 'xn--' are reserved", 6),
    ("bucket-alias-suffix", spec("aws: {bucket: data-s3alias}\n"), "ending with '-s3alias' are reserved", 6),
    ("data-bucket-reserved", spec("data: {source: 's3://sthree-data/raw/'}\n", head="name: EXP-0042-minimal\n"),
     "starting with 'sthree-' are reserved", 5),
    ("data-key-empty-segment", spec("data: {source: 's3://bucket-a/raw//x/'}\n", head="name: EXP-0042-minimal\n"),
     "an empty path segment", 5),
    ("schedule-source-bucket", sched(rate="'1 day'", parameters="{DataSource: 's3://bad..name/x/'}"),
     "no two dots in a row", 7),
    # ARNs per service and region
    ("role-of-another-service", spec("aws: {role: 'arn:aws:iam::111122223333:user/bob'}\n"), "aws.role", 6),
    ("scheduler-role-not-role", spec("aws: {scheduler_role: 'arn:aws:sts::111122223333:role/s'}\n"),
     "aws.scheduler_role", 6),
    ("kms-other-region", spec("aws: {kms_key: 'arn:aws:kms:eu-west-1:111122223333:key/abc-123'}\n"),
     "in eu-west-1, but the jobs run in us-east-1", 6),
    ("secret-other-service", spec("tracking: {wandb: {api_key_secret: 'arn:aws:ssm:us-east-1:111122223333:"
                                  "parameter/wandb'}}\n"), "an ARN of ssm, not secretsmanager", 6),
    ("secret-other-region", spec("tracking: {wandb: {api_key_secret: 'arn:aws:secretsmanager:eu-west-1:"
                                 "111122223333:secret:wandb-AbCdEf'}}\n"), "in eu-west-1", 6),
    ("image-other-region", spec("aws: {image_uri: '111122223333.dkr.ecr.eu-west-1.amazonaws.com/smpipe:1'}\n"),
     "the image is in eu-west-1, the jobs run in us-east-1", 6),
    ("vpc-subnet-id", spec("aws: {subnets: [subnet-123], security_groups: [sg-0123456789abcdef0]}\n"),
     "aws.subnets", 6),
    ("vpc-sg-id", spec("aws: {subnets: [subnet-0a1b2c3d4e5f67890], security_groups: [sg-xyz]}\n"),
     "aws.security_groups", 6),
    # parameter defaults against the API's own sets
    ("default-instance-not-offered", spec("resources: {processing: {instance_type: ml.m5.xxlarge}}\n"),
     "not a processing instance type SageMaker offers", 6),
    ("default-endpoint-instance", spec("register: {group: g, inference_instances: [ml.g5.huge]}\n", reg=""),
     "not an endpoint instance type SageMaker offers", 5),
]


@pytest.mark.parametrize("text,expected,line", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_but_well_formed_values_are_refused(write_spec, text, expected, line):
    with pytest.raises(SpecError) as info:
        load(write_spec(text))
    messages = [str(p) for p in info.value.problems]
    hit = next((p for p in info.value.problems if expected in str(p)), None)
    assert hit is not None, messages
    assert hit.file.endswith("experiment.yaml") and hit.line == line and hit.path, messages


def test_at_least_forty_distinct_refusals(write_spec):
    """Forty classes of wrong values, counted from what the validator says (one distinct message each), not
    from the length of the list above: two cases that hit the same check count once."""
    refusals = set()
    for _, text, expected, _ in CASES:
        with pytest.raises(SpecError) as info:
            load(write_spec(text))
        refusals |= {(p.path.split("[")[0], p.message) for p in info.value.problems if expected in str(p)}
    assert len(refusals) >= 40, len(refusals)


def test_a_missing_scheduler_role_does_not_hide_a_bad_cron(write_spec):
    with pytest.raises(SpecError) as info:
        load(write_spec(spec("schedules: [{name: n, cron: '0 25 ? * MON *', timezone: Mars/Olympus}]\n")))
    text = "\n".join(map(str, info.value.problems))
    assert "aws.scheduler_role" in text and "25 is outside 0-23" in text and "not an IANA time zone" in text


MINUTES = st.one_of(st.just("*"), st.integers(0, 59).map(str), st.integers(1, 59).map(lambda n: f"*/{n}"),
                    st.tuples(st.integers(0, 29), st.integers(30, 59)).map(lambda t: f"{t[0]}-{t[1]}"))
HOURS = st.one_of(st.just("*"), st.integers(0, 23).map(str),
                  st.lists(st.integers(0, 23), min_size=1, max_size=4).map(lambda v: ",".join(map(str, v))))
DOM = st.one_of(st.just("*"), st.integers(1, 31).map(str), st.just("L"), st.just("LW"), st.integers(1, 31).map(
    lambda d: f"{d}W"))
MONTH = st.one_of(st.just("*"), st.integers(1, 12).map(str), st.sampled_from(["JAN", "MAR-JUN", "DEC", "1/3"]))
DOW = st.one_of(st.just("*"), st.integers(1, 7).map(str), st.sampled_from(["MON", "MON-FRI", "SUN,SAT", "L", "6L"]),
                st.tuples(st.integers(1, 7), st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"))
YEAR = st.one_of(st.just("*"), st.integers(1970, 2199).map(str), st.just("2026-2030"))


@settings(max_examples=300, deadline=None)
@given(MINUTES, HOURS, DOM, MONTH, DOW, YEAR, st.booleans())
def test_valid_crons_are_never_refused(minutes, hours, dom, month, dow, year, day_of_month):
    days = (dom, "?") if day_of_month else ("?", dow)
    expression = f"{minutes} {hours} {days[0]} {month} {days[1]} {year}"
    assert check_cron(expression) == [], expression


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000), st.sampled_from(["minute", "hour", "day"]))
def test_valid_rates_are_never_refused(number, unit):
    assert check_rate(f"{number} {unit}{'s' if number > 1 else ''}") == []


def test_base_templates_stay_inside_the_project_and_never_cycle(write_spec, tmp_path):
    from conftest import MINIMAL

    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text("train: {hyperparameters: {epochs: 1}}\n")
    with pytest.raises(SpecError, match="resolves outside the project"):
        load(write_spec(MINIMAL + f"base: {outside}\n"))
    with pytest.raises(SpecError, match="resolves outside the project"):
        load(write_spec(MINIMAL + "base: ../../../" + outside.name + "\n"))
    templates = tmp_path / "templates"
    (templates / "a.yaml").write_text("base: templates/b.yaml\n")
    (templates / "b.yaml").write_text("base: templates/a.yaml\n")
    with pytest.raises(SpecError) as info:
        load(write_spec(MINIMAL + "base: templates/a.yaml\n"))
    assert "base templates form a cycle: templates/a.yaml → templates/b.yaml → templates/a.yaml" in str(info.value)
    assert info.value.problems[0].path == "base"


@pytest.mark.parametrize("name,value,words", [
    ("Epochs", 0, "Epochs=0: Input should be greater than or equal to 1 (the rule of train.hyperparameters.epochs)"),
    ("LearningRate", -0.1, "LearningRate=-0.1: Input should be greater than 0"),
    ("LearningRate", 2, "LearningRate=2.0: Input should be less than 1"),
    ("GateThreshold", 1.5, "GateThreshold=1.5: threshold 1.5 is outside [0, 1]"),
    ("TrainInstanceCount", 0, "TrainInstanceCount=0: Input should be greater than or equal to 1"),
    ("DataSource", "/data/raw", "DataSource='/data/raw' is not an s3:// URI"),
])
def test_run_time_values_pass_the_rule_of_the_field_they_set(write_spec, name, value, words):
    """One rule per parameter: the same for a schedule's values as for the field in the spec (and --param)."""
    with pytest.raises(SpecError) as info:
        load(write_spec(sched(rate="'1 day'", parameters=f"{{{name}: {value}}}")))
    hit = next((p for p in info.value.problems if p.path == f"schedules[0].parameters.{name}"), None)
    assert hit is not None and words in hit.message, [str(p) for p in info.value.problems]
    from pipelines.spec.parameters import check_values, declare

    spec = load(write_spec(sched(rate="'1 day'"))).spec
    assert any(words in m for m in check_values(declare(spec, spec.data.source), {name: value}, None))


TUNE = "steps: {tune: true}\ntune:\n  ranges: {%s}\n"


@pytest.mark.parametrize("ranges,words", [
    ("batch_size: '0,16,32'", "batch_size=0: Input should be greater than or equal to 1"),
    ("gradient_accumulation_steps: '0,2'", "gradient_accumulation_steps=0"),
    ("warmup_ratio: '0.1->1.5'", "warmup_ratio=1.5: Input should be less than 1"),
    ("learning_rate: '1e-5->2.0'", "learning_rate=2.0: Input should be less than 1"),
    ("batch_size: '8.5->32.5'", "batch_size is an integer: a continuous range would give it fractions"),
    ("weight_decay: '0->1'", "weight_decay is a decimal: an integer range gives it whole numbers only"),
    ("precision: 'bf16,fp32'", "a half-precision choice needs a GPU instance, ml.m5.xlarge has none"),
    ("epochs: '0,2'", "epochs=0"),
])
def test_every_value_a_range_can_produce_passes_the_fixed_value_rule(write_spec, ranges, words):
    text = spec(TUNE % ranges + "resources: {training: {instance_type: ml.m5.xlarge}}\n")
    with pytest.raises(SpecError) as info:
        load(write_spec(text))
    hit = next((p for p in info.value.problems if words in p.message), None)
    assert hit is not None and hit.path.startswith("tune.ranges."), [str(p) for p in info.value.problems]


def test_a_range_may_not_silently_replace_a_models_own_value(write_spec):
    text = spec(TUNE % "learning_rate: '1e-5->5e-5'", model="models:\n  - {name: bert, source: "
                "s3://bucket-a/models/bert/, hyperparameters: {learning_rate: 0.0001}}\n")
    with pytest.raises(SpecError, match="would replace it in every trial") as info:
        load(write_spec(text))
    assert any(p.path == "models[0].hyperparameters.learning_rate" for p in info.value.problems)


def test_a_tune_section_with_tuning_off_is_refused(write_spec):
    with pytest.raises(SpecError, match="steps.tune is off"):
        load(write_spec(spec("tune:\n  ranges: {learning_rate: '1e-5->5e-5'}\n")))


def test_valid_ranges_are_accepted(write_spec):
    load(write_spec(spec(TUNE % "learning_rate: '1e-5->5e-5', batch_size: '16,32', warmup_ratio: '0.0->0.2'")))


def test_an_unset_stride_follows_max_length_and_a_set_one_says_what_works(write_spec):
    model = "models:\n  - {{name: m, source: 's3://bucket-a/m/', max_length: {n}, long_documents: sliding{extra}}}\n"
    head = "name: EXP-0042-minimal\nregister: {group: g}\ndata: {source: 's3://bucket-a/raw/'}\n"
    for max_length, stride in ((128, 32), (96, 24), (256, 64), (4096, 64)):
        loaded = load(write_spec(head + model.format(n=max_length, extra="")))
        assert loaded.spec.models[0].stride == stride, max_length
    with pytest.raises(SpecError) as info:
        load(write_spec(head + model.format(n=128, extra=", stride: 64")))
    problem = next(p for p in info.value.problems if p.path == "models[0].stride")
    assert "stride 64 must be less than half of max_length 128" in problem.message
    assert "at most 63; leave stride out for 32" in problem.hint
    head_only = load(write_spec(head + "models:\n  - {name: m, source: 's3://bucket-a/m/', max_length: 96}\n"))
    assert head_only.spec.models[0].stride == 64  # unused without sliding: definitions stay as they were
