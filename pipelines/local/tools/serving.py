"""`make serve` / `make invoke`: a locally registered model version behind the same serving program an
endpoint runs, on 127.0.0.1, and a client for it."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

from pipelines.local import container
from pipelines.spec.errors import fail
from pipelines.store.local import LocalStore


def registered(registry: Path, group: str, version: int | None) -> dict:
    folder = registry / group
    versions = sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()) if folder.is_dir() else []
    if not versions:
        raise fail(str(folder), f"no model registered in {group} yet", hint="run the pipeline first: make local exp=…")
    if version is not None and version not in versions:
        raise fail(str(folder), f"{group} has no version {version}", hint=f"registered: {', '.join(map(str, versions))}")
    return json.loads((folder / f"{version or versions[-1]}.json").read_text(encoding="utf-8"))


def unpack(entry: dict, store: LocalStore, serving_root: Path) -> Path:
    """The version's model.tar.gz unpacked into <serving_root>/<group>-v<N>/opt/ml/model (once)."""
    opt_ml = serving_root / f"{entry['ModelPackageGroupName']}-v{entry['ModelPackageVersion']}" / "opt" / "ml"
    model_dir = opt_ml / "model"
    if not (model_dir / "labels.json").is_file():
        archive = store.path(entry["ModelDataUrl"])
        if not archive.is_file():
            raise fail(entry["ModelDataUrl"], "the registered model artifact is not in the local store",
                       hint="was .local-s3 cleaned? run the pipeline again")
        staging = model_dir.with_name("model.partial")
        staging.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        staging.rename(model_dir)
    return opt_ml


def serve(opt_ml: Path, port: int, code_root: Path, model_env: dict | None = None) -> NoReturn:
    """Become the image's serving program (exec), started as an endpoint starts it, until Ctrl-C or SIGTERM:
    a stop reaches the server itself, not a parent that would leave it running. Paths are made absolute
    first: the server starts in the sandbox's working directory, where a relative path means nothing."""
    opt_ml, code_root = opt_ml.resolve(), code_root.resolve()
    start = container.serving()
    env = container.environment(start, model_env or {}, opt_ml, code_root,
                                {"SAGEMAKER_BIND_TO_PORT": str(port), "SMPIPE_SERVE_HOST": "127.0.0.1"})
    cwd = container.workdir(opt_ml.parent.parent)
    cwd.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    os.chdir(cwd)
    os.execve(sys.executable, container.command(start), env)


def texts_from(file: str | None) -> list[str]:
    """One text a line from a file, or standard input for ``-``; blank lines are skipped."""
    if file is None:
        return []
    if file == "-":
        lines = sys.stdin.read().splitlines()
    else:
        path = Path(file)
        if not path.is_file():
            raise fail(file, "no such file to read texts from", hint="one text a line, e.g. make invoke exp=… file=texts.txt")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise fail(file, f"not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8") from None
    return [line for line in lines if line.strip()]


def invoke(port: int, texts: list[str]) -> list[dict]:
    if not texts:
        raise fail("<command line>", "no text to classify", hint='give text="…" or file=path (one text a line)')
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                     data=json.dumps({"inputs": texts}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as exc:
        raise fail("<command line>", f"the server answered {exc.code}: {exc.read().decode(errors='replace')[:300]}") from None
    except OSError as exc:
        raise fail("<command line>", f"no model server on 127.0.0.1:{port} ({exc})",
                   hint="start one with make serve exp=… (and the same port=)") from None
