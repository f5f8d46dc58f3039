"""The pipeline execution a job belongs to, learned without touching the step's cache key (Environment and
HyperParameters are cache-key attributes: an execution id there would make every step run again).

In order: SMPIPE_EXECUTION_ID where the definition sets it (tracking.mlflow); a processing job's own output
URIs (``…/runs/<execution id>/…``, in /opt/ml/config/processingjobconfig.json); a training job's
``sagemaker:pipeline-execution-arn`` tag, which SageMaker Pipelines puts on every job it starts (read with
ListTags on TRAINING_JOB_ARN; the local executor stands in for it with SMPIPE_PIPELINE_EXECUTION_ARN).
None when the job was started by hand or the tag cannot be read (network isolation, no permission).
"""

from __future__ import annotations

import functools
import os
import re
import sys

from steps import contract

EXECUTION_TAG = "sagemaker:pipeline-execution-arn"
STAND_IN = "SMPIPE_PIPELINE_EXECUTION_ARN"


def execution_id() -> str | None:
    return (os.environ.get("SMPIPE_EXECUTION_ID") or _from_processing_outputs()
            or _from_arn(os.environ.get(STAND_IN) or _tagged_execution_arn(os.environ.get("TRAINING_JOB_ARN", ""))))


def _from_arn(arn: str | None) -> str | None:
    return arn.rstrip("/").rsplit("/", 1)[-1] if arn else None


def _from_processing_outputs() -> str | None:
    path = contract.local(f"{contract.PROC_CONFIG}/processingjobconfig.json")
    if not path.is_file():
        return None
    outputs = contract.read_json(path).get("ProcessingOutputConfig", {}).get("Outputs", [])
    for output in outputs:
        found = re.search(rf"/{contract.RUNS}/([^/]+)/", output.get("S3Output", {}).get("S3Uri", "") + "/")
        if found:
            return found.group(1)
    return None


@functools.cache  # one ListTags call per job, however many trackers ask
def _tagged_execution_arn(job_arn: str) -> str | None:
    if not job_arn.startswith("arn:aws"):
        return None
    try:
        import boto3
        from botocore.config import Config

        client = boto3.client("sagemaker", region_name=job_arn.split(":")[3],
                              config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}))
        tags = client.list_tags(ResourceArn=job_arn)["Tags"]
    except Exception as exc:  # noqa: BLE001 - no network or no permission: the runs are grouped by experiment
        print(f"warning: this job's pipeline execution is unknown (ListTags failed: {type(exc).__name__}); "
              "its tracking runs are grouped by experiment", file=sys.stderr, flush=True)
        return None
    return next((t["Value"] for t in tags if t["Key"] == EXECUTION_TAG), None)
