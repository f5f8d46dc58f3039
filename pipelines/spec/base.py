"""What every section of the spec shares: strict models and the patterns of AWS names."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

NAME_RE = r"^EXP-[0-9]{4}-[a-z0-9]+(-[a-z0-9]+)*$"
ROLE_RE = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,64}$"
BUCKET_RE = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
INSTANCE_RE = r"^(ml\.[a-z0-9-]+\.[a-z0-9-]+|local|local_gpu)$"
KMS_RE = r"^(arn:aws[a-z-]*:kms:[A-Za-z0-9_-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9_/-]+|[0-9a-f-]{36}|alias/[A-Za-z0-9_/-]+)$"
MODEL_NAME_RE = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_NAME = 48  # pipeline name = name; job names append suffixes and SageMaker caps those at 63
PLACEHOLDER_ACCOUNT = "000000000000"
PLACEHOLDER_BUCKET = "smpipe-local"  # the default bucket: fine locally, refused at upsert (a global name)


def s3_or_local(value: str) -> str:
    if "://" in value and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", value):
        raise ValueError("only s3:// URIs or local paths are supported")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)
