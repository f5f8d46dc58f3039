"""`make build-push`: build the job image (containers/Dockerfile, plus the experiment's own
requirements.txt when it has one) and push it to the ECR repository named by aws.image_uri."""

from __future__ import annotations

import base64
import configparser
import json
import shutil
import subprocess
from pathlib import Path

from pipelines import ROOT
from pipelines.aws.pipeline import AwsError, Clients
from pipelines.compile.plan import Plan


def image_stack(root: Path = ROOT) -> tuple[dict, dict[str, str]]:
    """The declared base image, and every package the job image pins (the base's own, then the requirements)."""
    base = json.loads((root / "containers" / "base-image.json").read_text(encoding="utf-8"))
    packages = dict(base.get("provides", {}))
    for line in (root / "containers" / "requirements-jobs.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.strip().partition("==")
            packages[name.lower()] = version
    return base, packages


def setup_pins(root: Path = ROOT) -> tuple[str, dict[str, str]]:
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    options = config["options"]
    pins = dict(line.strip().lower().split("==") for line in options["install_requires"].strip().splitlines())
    return options["python_requires"], pins


def stack_problems(root: Path = ROOT) -> list[str]:
    """What would stop the job image from running our code: a python or pin that differs from setup.cfg,
    or a package whose own torch (or other) requirement the image's versions do not meet."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    base, packages = image_stack(root)
    python_requires, pins = setup_pins(root)
    problems = []
    if Version(base["python"]) not in SpecifierSet(python_requires):
        problems.append(f"base image python {base['python']} is outside setup.cfg's python_requires {python_requires}")
    for name, version in sorted(packages.items()):
        if name in pins and pins[name] != version:
            problems.append(f"the image pins {name}=={version}, setup.cfg {name}=={pins[name]}")
    if "torch" not in packages:
        problems.append("the image declares no torch version (base-image.json provides or requirements-jobs.txt)")
    problems += _unmet_requirements(packages, base["python"])
    dockerfile = (root / "containers" / "Dockerfile").read_text(encoding="utf-8")
    if f"ARG BASE_IMAGE={base['image']}\n" not in dockerfile:
        problems.append(f"containers/Dockerfile's BASE_IMAGE default is not {base['image']} (base-image.json)")
    return problems


def _unmet_requirements(packages: dict[str, str], python: str) -> list[str]:
    """Each pinned package's declared requirements (with the torch extra that transformers needs) against
    the image's versions, read from the installed metadata of the same pinned versions."""
    import importlib.metadata

    from packaging.requirements import Requirement

    problems = []
    for name, version in sorted(packages.items()):
        try:
            declared = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in declared:
            req = Requirement(text)
            other = req.name.lower()
            wanted = any(req.marker is None or req.marker.evaluate({"extra": extra, "python_version": python})
                         for extra in ("", "torch"))
            if other in packages and wanted and not req.specifier.contains(packages[other], prereleases=True):
                problems.append(f"{name}=={version} needs {other}{req.specifier}, the image has {other}=={packages[other]}")
    return problems


def base_tag(plan: Plan) -> str:
    return plan.spec.aws.image_uri.split("@")[0].rsplit(":", 1)[0] + ":smpipe-base"


def extension_for(plan: Plan, folder: Path) -> Path | None:
    """The experiment's own Dockerfile, or the extension template rendered for its requirements.txt."""
    if (folder / "Dockerfile").is_file():
        return folder / "Dockerfile"
    if not (folder / "requirements.txt").is_file():
        return None
    import jinja2

    text = jinja2.Template((ROOT / "containers" / "Dockerfile.experiment.j2").read_text(encoding="utf-8")).render(
        name=plan.spec.name, base_image=base_tag(plan))
    rendered = ROOT / "build" / plan.spec.name / "Dockerfile"
    rendered.parent.mkdir(parents=True, exist_ok=True)
    rendered.write_text(text, encoding="utf-8")
    return rendered


# SageMaker's instances the image serves are x86_64 (Arm families are refused at validate): an image built on
# an Arm laptop for its own platform would not start on them.
PLATFORM = "linux/amd64"


def _docker(*args: str) -> None:
    if shutil.which("docker") is None:
        raise AwsError("docker is not installed or not on PATH; install Docker to build images")
    result = subprocess.run(["docker", *args], capture_output=args[0] == "info", text=True, check=False)
    if result.returncode != 0:
        if args[0] == "info":
            raise AwsError("the docker daemon is not reachable (is Docker running?)")
        raise AwsError(f"docker {args[0]} failed with status {result.returncode}")


def build_push(plan: Plan, folder: Path, clients: Clients) -> str:
    problems = stack_problems()
    if problems:
        raise AwsError("the job image would not run the pinned stack:\n  " + "\n  ".join(problems))
    _docker("info")
    image = plan.spec.aws.image_uri
    registry = image.split("/", 1)[0]
    token = clients.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    login = subprocess.run(["docker", "login", "--username", user, "--password-stdin", registry],
                           input=password, text=True, capture_output=True, check=False)
    if login.returncode != 0:
        raise AwsError(f"docker login to {registry} failed: {login.stderr.strip()}")
    base, _ = image_stack()
    _docker("build", "--platform", PLATFORM, "-f", str(ROOT / "containers" / "Dockerfile"), "--build-arg",
            f"BASE_IMAGE={base['image']}", "-t", base_tag(plan), str(ROOT))
    extension = extension_for(plan, folder)
    if extension is None:
        _docker("tag", base_tag(plan), image)
    else:
        _docker("build", "--platform", PLATFORM, "-f", str(extension), "-t", image, str(ROOT))
    _docker("push", image)
    return image
