"""Local folders the spec names, checked before anything is staged: they lie inside the project (or under a
data root the user allows in SMPIPE_DATA_ROOTS), and never are or hold a credentials or system folder.

Whatever such a folder holds is staged into the local store and, by `make pipeline-upsert`, into the
experiment's S3 prefix: `data.source: ~/.aws` would put a user's keys in a shared bucket.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.spec import fs
from pipelines.spec.experiment import Experiment

DATA_ROOTS_ENV = "SMPIPE_DATA_ROOTS"  # os.pathsep-separated folders outside the project that may be staged
SECRET_NAMES = {".aws", ".ssh", ".gnupg", ".kube", ".docker", ".azure", ".netrc", ".git-credentials", ".pypirc",
                "gcloud", ".password-store"}
SYSTEM_ROOTS = ("/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var", "/usr", "/bin", "/sbin", "/lib", "/run")


def local_fields(spec: Experiment) -> list[tuple[tuple, str]]:
    """(field, value) of every spec value that names a local folder to stage."""
    out = [(("data", "source"), spec.data.source)]
    out += [(("models", i, "source"), m.source) for i, m in enumerate(spec.models)]
    out += [(("transform", "source"), spec.transform.source)] if spec.transform else []
    return [(loc, value) for loc, value in out if not value.startswith("s3://")]


def check(spec: Experiment, root: Path, add) -> None:
    allowed = [Path(p).expanduser().resolve() for p in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep) if p]
    for loc, value in local_fields(spec):
        if loc[0] == "models" and _hub_id(spec, value, root):
            continue
        problem = path_problem(value, root, allowed)
        if problem:
            add(loc, *problem)


def _hub_id(spec: Experiment, value: str, root: Path) -> bool:
    """A model hub id (downloaded by the job), not a folder: as compile/plan.py tells them apart."""
    return (spec.allow_hub_download and not value.startswith(("/", "~", ".")) and not fs.too_long(value)
            and not fs.exists(root / value))


def path_problem(value: str, root: Path, allowed: list[Path]) -> tuple[str, str] | None:
    """(message, hint) when ``value`` may not be staged; None when it may."""
    if fs.too_long(value):
        return (f"a path of {len(value):,} characters is not a folder any file system holds",
                "give the folder's path relative to the project root")
    path = Path(value).expanduser()
    resolved = fs.resolved(path if path.is_absolute() else root / path)
    secret = next((part for part in resolved.parts if part in SECRET_NAMES), None)
    if secret:
        return (f"{resolved} is (or lies in) {secret}, a credentials folder: staging it would copy its files into "
                "the store and, at upsert, into the experiment's S3 prefix",
                "point at a folder that holds only the data")
    home = Path.home().resolve()
    if resolved in (Path("/"), home) or any(resolved == Path(r) or resolved.is_relative_to(r) for r in SYSTEM_ROOTS
                                            if not root.resolve().is_relative_to(r)):
        return (f"{resolved} is a system or home folder, not a data folder", "point at a folder that holds only the data")
    if resolved.is_relative_to(root.resolve()) or any(resolved.is_relative_to(a) for a in allowed):
        return None
    return (f"{resolved} lies outside the project ({root.resolve()}): its files would be staged into the store and, "
            "at upsert, into the experiment's S3 prefix",
            f"move or link the data into the project, give an s3:// URI, or allow the folder with "
            f"{DATA_ROOTS_ENV}=<folder>")
