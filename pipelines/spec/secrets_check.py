"""Refuse a secret pasted into the spec: fields hold a secret's id or ARN, never the secret.

Every string value of the spec is looked at (descriptions, tags, tracking, schedule values …) except those
whose own pattern already pins them to an ARN, URI or digest. A message never repeats the value.
"""

from __future__ import annotations

import math
import re
from collections import Counter

# Shapes of credentials users paste: wandb keys (40 hex), AWS access key ids, GitHub / Hugging Face /
# OpenAI / Slack tokens, private keys; then any long random-looking token.
SHAPES = (
    (re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{40}(?![0-9a-fA-F])"), "a 40-character hex string, the shape of a wandb API key"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\b(ghp|gho|ghs|ghu|github_pat|hf|sk|xox[abp])[_-][A-Za-z0-9_-]{16,}"), "an API token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
)
AWS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
TOKEN_RE = re.compile(r"[A-Za-z0-9+=_-]{32,}")
# Fields whose schema pattern already limits them to identifiers, ARNs, URIs or digests.
STRUCTURED = {("aws", "image_uri"), ("aws", "role"), ("aws", "kms_key"), ("aws", "scheduler_role"), ("aws", "bucket"),
              ("data", "source")}


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_like_secret(value: str) -> str | None:
    """What kind of secret the value looks like, or None."""
    for pattern, what in SHAPES:
        if pattern.search(value):
            return what
    for token in AWS_SECRET_RE.findall(value):
        if _mixed(token):
            return "a 40-character secret access key"
    for token in TOKEN_RE.findall(value):
        if _mixed(token) and entropy(token) > 4.0:
            return "a long random token (an API key or password)"
    return None


def _mixed(token: str) -> bool:
    return all(re.search(c, token) for c in ("[a-z]", "[A-Z]", "[0-9]"))


def strings(value, path: tuple = ()):
    """(path, string) for every string in a nested dict/list, mapping keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield path, key  # a key is reported at its mapping: its own name would repeat it
            yield from strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, (*path, i))
    elif isinstance(value, str):
        yield path, value


def find(data: dict) -> list[tuple[tuple, str]]:
    """(field path, what it looks like) for every value that looks like a secret."""
    out = []
    for path, value in strings(data):
        if tuple(path[:2]) in STRUCTURED or (path and path[0] == "models" and path[-1] == "source"):
            continue
        what = looks_like_secret(value)
        if what:
            out.append((path, what))
    return out
