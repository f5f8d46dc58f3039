"""Cross-field rules for the values AWS and the scheduler read: every S3 location, ARN, region, time zone
and schedule expression of a spec, checked as the service would check it (see cron.py and values.py)."""

from __future__ import annotations

import re

from pipelines.spec import cron, values
from pipelines.spec.experiment import Experiment

ECR_HOST_RE = re.compile(r"^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


TAG_VALUE_RE = re.compile(r"^[\w.:/=+@ -]*$")  # AWS's tag rule: letters in any language, digits, spaces, _.:/=+-@


def check(spec: Experiment, add) -> None:
    _tags(spec, add)
    _s3(spec, add)
    _arns(spec, add)
    _schedules(spec, add)


def _tags(spec: Experiment, add) -> None:
    for key, value in spec.aws.tags.items():
        loc = ("aws", "tags", key)
        if key.lower().startswith("aws:"):
            add(loc, f"tag key {key!r}: the aws: prefix is reserved for AWS, which refuses it", "drop the aws: prefix")
        elif key == "smpipe:experiment":
            add(loc, "smpipe:experiment is the tag deploy and undeploy read to tell this experiment's resources "
                "from others'; it is set from name", "remove it")
        elif not TAG_VALUE_RE.match(key) or not TAG_VALUE_RE.match(value):
            add(loc, f"tag {key!r}: {value!r}: AWS allows only letters, digits, spaces and _ . : / = + - @",
                "remove the other characters")


def _s3(spec: Experiment, add) -> None:
    for message in values.check_bucket(spec.aws.bucket):
        add(("aws", "bucket"), message, "S3 bucket naming rules")
    uris = [(("data", "source"), spec.data.source)]
    uris += [(("models", i, "source"), m.source) for i, m in enumerate(spec.models)]
    uris += [(("transform", "source"), spec.transform.source)] if spec.transform else []
    uris += [(("schedules", i, "parameters", k), str(v)) for i, s in enumerate(spec.schedules)
             for k, v in s.parameters.items()]
    for loc, uri in uris:
        if uri.startswith("s3://"):
            for message in values.check_s3_uri(uri):
                add(loc, message, "S3 bucket naming rules")


def _arns(spec: Experiment, add) -> None:
    aws = spec.aws
    for loc, arn in ((("aws", "role"), aws.role), (("aws", "scheduler_role"), aws.scheduler_role)):
        if arn:
            for message in values.check_arn(arn, "iam", None, "role/"):
                add(loc, message, "an IAM role ARN: arn:aws:iam::<account>:role/<name>")
    if aws.kms_key and aws.kms_key.startswith("arn:"):
        resource = "alias/" if ":alias/" in aws.kms_key else "key/"
        for message in values.check_arn(aws.kms_key, "kms", aws.region, resource):
            add(("aws", "kms_key"), message, "a KMS key or alias of the jobs' region")
    secret = spec.tracking.wandb.api_key_secret
    if secret and secret.startswith("arn:"):
        for message in values.check_arn(secret, "secretsmanager", aws.region, "secret:"):
            add(("tracking", "wandb", "api_key_secret"), message, "a Secrets Manager secret name or ARN")
    image = ECR_HOST_RE.match(aws.image_uri)
    if image and image.group(1) != aws.region:
        add(("aws", "image_uri"), f"the image is in {image.group(1)}, the jobs run in {aws.region}: SageMaker pulls "
            "images from ECR in the jobs' own region", "push the image to that region (make build-push)")
    if not values.REGION_RE.match(aws.region):
        add(("aws", "region"), f"{aws.region!r} is not an AWS region name", "e.g. us-east-1, eu-central-1")


def _schedules(spec: Experiment, add) -> None:
    for i, schedule in enumerate(spec.schedules):
        if schedule.cron is not None:
            for message in cron.check_cron(schedule.cron):
                add(("schedules", i, "cron"), f"cron {schedule.cron!r}: {message}",
                    "EventBridge's six fields: minutes hours day-of-month month day-of-week year, e.g. \"0 3 ? * MON *\"")
        if schedule.rate is not None:
            for message in cron.check_rate(schedule.rate):
                add(("schedules", i, "rate"), f"rate {schedule.rate!r}: {message}")
        for message in values.check_time_zone(schedule.timezone):
            add(("schedules", i, "timezone"), message)
