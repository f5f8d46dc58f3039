"""`make build-push`: build the job image (containers/Dockerfile, plus the experiment's own
requirements.txt when it has one) and push it to the ECR repository named by aws.image_uri."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

from pipelines.aws import AwsError, Clients
from pipelines.plan import Plan

ROOT = Path(__file__).resolve().parent.parent


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


def _docker(*args: str) -> None:
    if shutil.which("docker") is None:
        raise AwsError("docker is not installed or not on PATH; install Docker to build images")
    result = subprocess.run(["docker", *args], capture_output=args[0] == "info", text=True, check=False)
    if result.returncode != 0:
        if args[0] == "info":
            raise AwsError("the docker daemon is not reachable (is Docker running?)")
        raise AwsError(f"docker {args[0]} failed with status {result.returncode}")


def build_push(plan: Plan, folder: Path, clients: Clients) -> str:
    _docker("info")
    image = plan.spec.aws.image_uri
    registry = image.split("/", 1)[0]
    token = clients.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    login = subprocess.run(["docker", "login", "--username", user, "--password-stdin", registry],
                           input=password, text=True, capture_output=True, check=False)
    if login.returncode != 0:
        raise AwsError(f"docker login to {registry} failed: {login.stderr.strip()}")
    _docker("build", "-f", str(ROOT / "containers" / "Dockerfile"), "-t", base_tag(plan), str(ROOT))
    extension = extension_for(plan, folder)
    if extension is None:
        _docker("tag", base_tag(plan), image)
    else:
        _docker("build", "-f", str(extension), "-t", image, str(ROOT))
    _docker("push", image)
    return image
