"""Values that pass the schema's patterns but that AWS would refuse later: S3 bucket names and keys, ARNs
of the wrong service or region, time zones the scheduler does not know. Each returns messages."""

from __future__ import annotations

import functools
import ipaddress
import re

BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
ARN_RE = re.compile(r"^arn:(aws[a-z-]*):([a-z0-9-]+):([a-z0-9-]*):([0-9]{12}|):(.+)$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")


def check_bucket(bucket: str) -> list[str]:
    if not BUCKET_CHARS.match(bucket):
        return [f"bucket {bucket!r}: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a "
                "letter or digit"]
    problems = []
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        problems.append(f"bucket {bucket!r}: no two dots in a row, and no dot next to a hyphen")
    try:
        ipaddress.IPv4Address(bucket)
        problems.append(f"bucket {bucket!r}: a bucket name cannot look like an IP address")
    except ValueError:
        pass
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if bucket.startswith(prefix):
            problems.append(f"bucket {bucket!r}: names starting with {prefix!r} are reserved")
    for suffix in ("-s3alias", "--ol-s3", "--x-s3", ".mrap"):
        if bucket.endswith(suffix):
            problems.append(f"bucket {bucket!r}: names ending with {suffix!r} are reserved")
    return problems


def check_s3_uri(uri: str) -> list[str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    problems = check_bucket(bucket)
    if len(key.encode()) > 1024:
        problems.append(f"the key of {uri[:60]}… is longer than S3's 1,024 bytes")
    if "//" in key:
        problems.append(f"{uri}: an empty path segment ('//') makes a different key than intended")
    return problems


def check_arn(arn: str, service: str, region: str | None, resource: str) -> list[str]:
    """An ARN of ``service`` in ``region`` (None: global, like IAM) whose resource starts with ``resource``."""
    match = ARN_RE.match(arn)
    if not match:
        return [f"not an ARN: arn:partition:{service}:region:account:{resource}…"]
    _, svc, arn_region, account, rest = match.groups()
    problems = []
    if svc != service:
        problems.append(f"an ARN of {svc}, not {service}")
    if region and arn_region and arn_region != region:
        problems.append(f"in {arn_region}, but the jobs run in {region} (aws.region): {service} refuses a "
                        "resource of another region")
    if not account:
        problems.append("the ARN has no account id")
    if not rest.startswith(resource):
        problems.append(f"the resource should start with {resource!r}")
    return problems


@functools.cache
def time_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def check_time_zone(name: str) -> list[str]:
    if name in time_zones():
        return []
    import difflib

    close = difflib.get_close_matches(name, sorted(time_zones()), n=1)
    return [f"{name!r} is not an IANA time zone" + (f" (did you mean {close[0]!r}?)" if close else
                                                     " (e.g. Europe/Berlin, America/New_York, UTC)")]
