"""Bad specs: every one is refused with file:line:column, the field path and a useful message."""

from __future__ import annotations

import pytest
from conftest import MINIMAL

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load

HEAD = "name: EXP-0042-minimal\ndata: {source: s3://bucket-a/raw/}\n"
MODEL = "models:\n  - {name: bert, source: s3://bucket-a/models/bert/}\n"
REG = "register: {group: minimal-group}\n"


def spec(*extra: str, head: str = HEAD, model: str = MODEL, reg: str = REG) -> str:
    return head + model + reg + "".join(extra)


CASES = [
    # (id, text, expected substring, expected line or None)
    ("bad-name", spec(head="name: exp_42\ndata: {source: s3://bucket-a/raw/}\n"), "name: 'exp_42' does not match", 1),
    ("name-too-long", spec(head="name: EXP-0001-" + "a" * 60 + "\ndata: {source: s3://b1/raw/}\n"), "at most 48", 1),
    ("missing-data", "name: EXP-0042-x\n" + MODEL + REG, "data: Field required", 1),
    ("unknown-key-did-you-mean", spec("trian: {}\n"), "unknown key 'trian' (did you mean 'train'?)", 6),
    ("unknown-nested-key", spec("train: {hyperparameters: {epoch: 3}}\n"), "did you mean 'epochs'?", 6),
    ("duplicate-key", spec("gate: {threshold: 0.5}\ngate: {threshold: 0.6}\n"), "duplicate key 'gate'", 7),
    ("bad-role", spec("aws: {role: 'arn:aws:iam::12:role/x'}\n"), "aws.role", 6),
    ("bad-bucket", spec("aws: {bucket: Bad_Bucket}\n"), "aws.bucket", 6),
    ("bad-instance", spec("resources: {training: {instance_type: p3.2xlarge}}\n"), "resources.training.instance_type", 6),
    ("threshold-out-of-range", spec("gate: {threshold: 1.5}\n"), "outside [0, 1]", 6),
    ("gate-metric-unknown", spec("gate: {metric: test:auc}\n"), "does not produce 'test:auc'", 6),
    ("train-and-tune", spec("steps: {train: true, tune: true}\ntune: {ranges: {learning_rate: '1e-5->5e-5'}}\n"),
     "train and tune are both enabled", 6),
    ("tune-without-ranges", spec("steps: {tune: true}\ntune: {strategy: Random}\n"), "at least one range", 7),
    ("tune-without-section", spec("steps: {tune: true}\n"), "no tune: section", 6),
    ("inverted-range", spec("steps: {tune: true}\ntune: {ranges: {learning_rate: '5e-5->1e-5'}}\n"), "inverted", 7),
    ("range-unknown-hp", spec("steps: {tune: true}\ntune: {ranges: {lr: '1e-5->5e-5'}}\n"), "unknown hyperparameter 'lr'", 7),
    ("objective-not-produced", spec("steps: {tune: true}\ntune: {objective: {metric: validation:auc}, "
                                    "ranges: {batch_size: '16,32'}}\n"), "does not produce 'validation:auc'", 7),
    ("log-scale-zero", spec("steps: {tune: true}\ntune: {ranges: {warmup_ratio: {min: 0, max: 0.2, "
                            "scaling: Logarithmic}}}\n"), "Logarithmic scaling needs", 7),
    ("parallel-over-max", spec("steps: {tune: true}\ntune: {max_jobs: 2, max_parallel_jobs: 4, "
                               "ranges: {batch_size: '16,32'}}\n"), "exceeds max_jobs", 7),
    ("gpu-required-cpu-instance", spec("resources: {gpus: true, training: {instance_type: ml.m5.xlarge}}\n"),
     "has no GPU", 6),
    ("bf16-on-cpu", spec("resources: {training: {instance_type: ml.c5.xlarge}}\n"
                         "train: {hyperparameters: {precision: bf16}}\n"), "needs a GPU instance", 7),
    ("bad-cron", spec("schedules: [{name: nightly, cron: '0 3 * * *'}]\n"), "has 6 fields", 6),
    ("cron-and-rate", spec("schedules: [{name: n, cron: '0 3 ? * MON *', rate: '1 day'}]\n"), "exactly one of cron or rate", 6),
    ("splits-not-one", spec("data: {source: s3://bucket-a/raw/, splits: {train: 0.5, validation: 0.1, test: 0.1}}\n",
                            head="name: EXP-0042-minimal\n"), "must be 1.0", 5),
    ("duplicate-model-names", spec(model="models:\n  - {name: bert, source: s3://b1/x/}\n  - {name: bert, source: s3://b1/y/}\n"),
     "used twice", 5),
    ("hub-id-not-allowed", spec(model="models:\n  - {name: bert, source: bert-base-uncased}\n"), "looks like a model hub id", 4),
    ("register-without-group", spec(reg=""), "register.group", 1),
    ("spot-wait-too-short", spec("resources: {training: {spot: true, max_runtime_s: 7200, max_wait_s: 3600}}\n"),
     "max_wait_s must be >=", 6),
    ("vpc-half", spec("aws: {subnets: [subnet-0a1b2c3d4e5f67890]}\n"), "given together", 6),
    ("no-models", spec(model="models: []\n"), "models", 3),
    ("bad-model-hp", spec(model="models:\n  - {name: bert, source: s3://b1/x/, hyperparameters: {lr: 1}}\n"),
     "unknown hyperparameter 'lr'", 4),
    ("grid-with-interval", spec("steps: {tune: true}\ntune: {strategy: Grid, ranges: {learning_rate: '1e-5->5e-5'}}\n"),
     "Grid search takes only categorical", 7),
    ("wrong-type", spec("train: {hyperparameters: {epochs: three}}\n"), "epochs", 6),
    ("processing-count", spec("resources: {processing: {instance_count: 4}}\n"), "runs on one instance", 6),
    ("register-needs-evaluate", spec("steps: {evaluate: false}\n"), "register needs evaluate", 6),
    ("isolation-with-secret", spec("aws: {network_isolation: true}\n"
                                   "tracking: {wandb: {mode: online, api_key_secret: wandb/key}}\n"), "cannot reach Secrets", 7),
    ("instance-type-not-offered", spec("resources: {training: {instance_type: ml.g5.huge}}\n"),
     "ml.g5.huge is not a training instance type SageMaker offers", 6),
    ("processing-instance-typo", spec("resources: {processing: {instance_type: ml.m5.xlarg}}\n"),
     "did you mean ml.m5.xlarge?", 6),
    ("schedule-unknown-parameter", spec("aws: {scheduler_role: 'arn:aws:iam::111122223333:role/s'}\n"
                                        "schedules: [{name: n, rate: 1 day, parameters: {Epoch: 2}}]\n"),
     "unknown pipeline parameter 'Epoch' (did you mean 'Epochs'?)", 7),
    ("schedule-parameter-type", spec("aws: {scheduler_role: 'arn:aws:iam::111122223333:role/s'}\n"
                                     "schedules: [{name: n, rate: 1 day, parameters: {Epochs: many}}]\n"),
     "Epochs='many' is not an Integer", 7),
    ("schedule-approval-typo", spec("aws: {scheduler_role: 'arn:aws:iam::111122223333:role/s'}\n"
                                    "schedules: [{name: n, rate: 1 day, parameters: {ApprovalStatus: Aproved}}]\n"),
     "did you mean 'Approved'?", 7),
    ("transform-needs-evaluate", spec("steps: {evaluate: false, register: false}\ntransform: {source: s3://bucket-b/new/}\n"),
     "scores with the best model, which evaluate picks", 7),
    ("transform-bad-content-type", spec("transform: {source: s3://bucket-b/new/, content_type: text/plain}\n"),
     "transform.content_type", 6),
    ("transform-instance-not-offered", spec("transform: {source: s3://bucket-b/new/}\nresources: {transform: "
                                            "{instance_type: ml.p5.48xlarge}}\n"), "not a transform instance type", 7),
    ("s3-folder-without-slash", spec("data: {source: s3://bucket-a/raw}\n", head="name: EXP-0042-minimal\n"),
     "s3://bucket-a/raw has no final '/'", 5),
    ("schedule-source-without-slash", spec("aws: {scheduler_role: 'arn:aws:iam::111122223333:role/s'}\n"
                                           "schedules: [{name: n, rate: 1 day, parameters: "
                                           "{DataSource: 's3://bucket-a/latest'}}]\n"), "write s3://bucket-a/latest/", 7),
    ("schedule-kms-storage-kind", spec("aws: {scheduler_role: 'arn:aws:iam::111122223333:role/s', kms_key: alias/ml}\n"
                                       "schedules: [{name: n, rate: 1 day, parameters: "
                                       "{TrainInstanceType: ml.m5.xlarge}}]\n"), "has no local storage", 7),
    # instances the job image cannot compute on, and limits SageMaker enforces only at run time
    ("volta-training", spec("resources: {training: {instance_type: ml.p3.2xlarge}}\n"), "no kernels in the image's torch", 6),
    ("kepler-transform", spec("transform: {source: s3://bucket-b/new/}\nresources: {transform: "
                              "{instance_type: ml.p2.xlarge}}\n"), "compute capability 3.7", 7),
    ("grace-training", spec("resources: {training: {instance_type: ml.p6e-gb200.36xlarge}}\n"), "built for x86_64", 6),
    ("trainium-training", spec("resources: {training: {instance_type: ml.trn1.2xlarge}}\n"), "AWS Neuron", 6),
    ("volta-endpoint", spec("register: {group: g, inference_instances: [ml.p3.2xlarge]}\n", reg=""),
     "no kernels in the image's torch", 5),
    ("schedule-volta", spec("aws: {scheduler_role: 'arn:aws:iam::111122223333:role/s'}\n"
                            "schedules: [{name: n, rate: 1 day, parameters: {TrainInstanceType: ml.p3.8xlarge}}]\n"),
     "TrainInstanceType=ml.p3.8xlarge: ml.p3.8xlarge's GPUs", 7),
    ("transform-payload-times-concurrency", spec("transform: {source: s3://bucket-b/new/, max_payload_mb: 50, "
                                                 "max_concurrent_transforms: 4}\n"), "50 × 4 exceeds the 100 MB", 6),
    ("serverless-in-a-vpc", spec("aws: {subnets: [subnet-0a1b2c3d4e5f67890], security_groups: [sg-0123456789abcdef0]}\n"
                                 "deploy: {serverless: {memory_mb: 2048}}\n"), "cannot run in a VPC", 7),
    ("secret-never-read-offline", spec("tracking: {wandb: {api_key_secret: wandb/key}}\n"), "read only with mode: online", 6),
]


@pytest.mark.parametrize("text,expected,line", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec_is_refused(write_spec, text, expected, line):
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load(path)
    messages = [str(p) for p in info.value.problems]
    assert any(expected in m for m in messages), messages
    hit = next(p for p in info.value.problems if expected in str(p))
    assert hit.file.endswith("experiment.yaml")
    if line is not None:
        assert hit.line == line, messages


def test_every_error_is_reported_at_once(write_spec):
    text = spec("gate: {threshold: 2.0}\ntrain: {hyperparameters: {epoch: 3}}\nresources: {training: {spot: maybe}}\n")
    with pytest.raises(SpecError) as info:
        load(write_spec(text))
    fields = {p.path for p in info.value.problems}
    assert {"gate.threshold", "train.hyperparameters.epoch", "resources.training.spot"} <= fields, fields


def test_error_format_is_file_line_column_path_message(write_spec):
    with pytest.raises(SpecError) as info:
        load(write_spec(MINIMAL + "trian: {}\n"))
    text = str(info.value.problems[0])
    assert text.endswith("experiment.yaml:6:1: trian: unknown key 'trian' (did you mean 'train'?)")


def test_invalid_override_names_the_command_line(write_spec):
    with pytest.raises(SpecError) as info:
        load(write_spec(), ["train.hyperparameters.epochs=0", "nonsense"])
    text = "\n".join(str(p) for p in info.value.problems)
    assert "<command line>:1:2" in text and "not key=value" in text


def test_override_out_of_range_names_the_override(write_spec):
    with pytest.raises(SpecError) as info:
        load(write_spec(), ["train.hyperparameters.epochs=0"])
    assert info.value.problems[0].file == "<command line>"
    assert "greater than or equal to 1" in info.value.problems[0].message


def test_a_value_that_fits_no_member_of_a_union_is_one_problem(write_spec):
    """parameters: dict[str, str | int | float | bool]: a list there is one line naming every allowed type."""
    path = write_spec(spec("notebooks: [{name: nb, path: nb.ipynb, parameters: {top_k: [1]}}]\n"))
    with pytest.raises(SpecError) as info:
        load(path)
    here = [p for p in info.value.problems if p.path == "notebooks[0].parameters.top_k"]
    assert len(here) == 1 and here[0].line == 6, info.value.problems
    assert here[0].message == "Input should be a valid string, integer, number or boolean"


def test_schema_errors_and_cross_field_rules_come_in_one_pass(write_spec):
    """A typo and a wrong type, with a cross-field problem elsewhere: all in one run, not one per fix. A rule
    about an object whose own field was wrong is not reported (it would judge the default, not the spec)."""
    text = (HEAD + "models:\n"
            "  - {name: a, source: s3://bucket-a/m/, max_length: 64, long_documents: sliding, stride: 40}\n"
            "  - {name: b, source: s3://bucket-a/m/, max_length: x, long_documents: sliding, stride: 200}\n"
            "train: {hyperparameters: {epocs: 2}}\n")  # and no register: group, which registering needs
    with pytest.raises(SpecError) as info:
        load(write_spec(text))
    found = {p.path: p.message for p in info.value.problems}
    assert "did you mean 'epochs'?" in str(info.value) and "valid integer" in found["models[1].max_length"]
    assert "less than half of max_length 64" in found["models[0].stride"]  # a rule, beside the schema errors
    assert "register.group" in found["register"]
    assert "models[1].stride" not in found  # judged against the default max_length: left out


def test_a_missing_required_field_still_reports_only_the_schema(write_spec):
    with pytest.raises(SpecError) as info:
        load(write_spec("name: EXP-0042-x\n" + MODEL))
    assert [p.path for p in info.value.problems] == ["data"]
