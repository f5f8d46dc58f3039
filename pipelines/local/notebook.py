"""A notebook step on this machine: papermill runs the staged notebook with the step's parameters (the run's
S3 URIs among them) in a kernel of this environment; the executed notebook and an HTML copy go to the step's
output folder in the run. A failing cell fails the step with its error and the cell's traceback in the log.

The kernel sees SMPIPE_LOCAL_STORE, the store's folder, so a notebook maps s3:// URIs to local files here
and downloads them on SageMaker with the same code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipelines.local.jobs import Job, JobFailed

ENTRYPOINT = ["amazon_sagemaker_scheduler"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_notebook_job(definition: dict) -> bool:
    return definition.get("AlgorithmSpecification", {}).get("ContainerEntrypoint") == ENTRYPOINT


def _html(executed: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(executed), as_version=4))
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def run_notebook(job: Job, definition: dict, code_root: Path) -> dict:
    import logging

    import papermill

    logging.getLogger("papermill").setLevel(logging.WARNING)  # cell progress goes to the step log, not the terminal
    job.fresh_sandbox()
    env, channel = definition["Environment"], definition["InputDataConfig"][0]
    inputs = job.sandbox / "input"
    if job.store.download(channel["DataSource"]["S3DataSource"]["S3Uri"], inputs) == 0:
        raise JobFailed(f"{job.name}: the staged notebook is missing at {channel['DataSource']['S3DataSource']['S3Uri']}")
    executed = job.sandbox / "output" / env["SM_OUTPUT_NOTEBOOK_NAME"]
    executed.parent.mkdir(parents=True)
    kernel_env = {"SMPIPE_LOCAL_STORE": str(job.store.local_root or ""), "PYTHONPATH": str(code_root)}
    saved = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)  # the kernel papermill starts inherits this process's environment
    job.log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with job.log.open("w", encoding="utf-8", buffering=1) as log:
            papermill.execute_notebook(str(inputs / env["SM_INPUT_NOTEBOOK_NAME"]), str(executed),
                                       parameters=dict(definition.get("HyperParameters", {})),
                                       kernel_name=env.get("SM_KERNEL_NAME", "python3"), cwd=str(inputs),
                                       log_output=True, stdout_file=log, stderr_file=log, progress_bar=False)
    except papermill.PapermillExecutionError as exc:
        trace = ANSI.sub("", "\n".join(exc.traceback))
        job.log.open("a", encoding="utf-8").write(trace + "\n")
        raise JobFailed(f"{job.name}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}", 1, trace[-3000:]) from None
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        if executed.is_file():
            output = definition["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            job.store.upload(executed, f"{output}/{executed.name}")
            job.store.upload(_html(executed), f"{output}/{executed.with_suffix('.html').name}")
    return {"TrainingJobName": job.name, "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": ""}, "OutputDataConfig": definition["OutputDataConfig"],
            "HyperParameters": definition.get("HyperParameters", {}), "metrics": {}}
