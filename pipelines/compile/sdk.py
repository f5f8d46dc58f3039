"""The one place that prepares and imports the SageMaker SDK for offline compilation.

SDK v3 needs a region at import, validates roles over the network unless told not to, sends
telemetry, and reads stray config files from the user's home; all of that is pinned here.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

CONFIG = Path(__file__).with_name("sdk_config.yaml")
OFFLINE_KEY = "compile-offline"


def prepare_environment(region: str) -> None:
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(CONFIG)
    os.environ["SAGEMAKER_ADMIN_CONFIG_OVERRIDE"] = str(CONFIG)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    for name in ("sagemaker", "sagemaker.config", "sagemaker.core", "sagemaker.mlops", "sagemaker.train",
                 "sagemaker.serve", "botocore", "boto3"):
        logging.getLogger(name).setLevel(logging.ERROR)


OFFLINE_ENV = {"AWS_ACCESS_KEY_ID": OFFLINE_KEY, "AWS_SECRET_ACCESS_KEY": OFFLINE_KEY, "AWS_EC2_METADATA_DISABLED": "true"}


@contextmanager
def offline():
    """Compile without touching the user's credentials or the network.

    The SDK creates boto3 clients at import and inside step constructors (ProcessingStep builds a
    throwaway LocalSagemakerClient), and each walks the credential chain: files, then the instance
    metadata service over the network. Placeholder keys in the environment stop the chain at its
    first link; the real environment is restored afterwards.
    """
    saved = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    try:
        with _shared_botocore_loader():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if "boto3" in sys.modules:
            sys.modules["boto3"].DEFAULT_SESSION = None  # never keep a session holding placeholder keys


@contextmanager
def _shared_botocore_loader():
    """One botocore data loader for every session made while compiling.

    The SDK makes a new boto3 session for nearly every object (four sessions, 17 clients for one
    definition), and each session parses the large SageMaker service model JSON again: about half
    of a compile's wall time. The files are read-only data, so sharing the parsed copies is safe.
    """
    import botocore.loaders
    import botocore.session

    original = botocore.session.create_loader
    botocore.session.create_loader = functools.lru_cache(maxsize=4)(botocore.loaders.create_loader)
    try:
        yield
    finally:
        botocore.session.create_loader = original


def offline_session(region: str, bucket: str):
    """A PipelineSession that never resolves credentials and never looks up buckets."""
    prepare_environment(region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    class OfflinePipelineSession(PipelineSession):
        def default_bucket(self):  # ModelBuilder.register() asks; the answer is in the spec
            return bucket

    _memoize_config_validation()
    _skip_throwaway_local_clients()
    boto = boto3.Session(region_name=region, aws_access_key_id=OFFLINE_KEY, aws_secret_access_key=OFFLINE_KEY)
    return OfflinePipelineSession(boto_session=boto, default_bucket=bucket)


class _LocalClientNames:
    """What ProcessingStep/TransformStep read of the LocalSagemakerClient they build: method names."""

    def create_processing_job(self, *args, **kwargs):
        raise NotImplementedError

    def create_transform_job(self, *args, **kwargs):
        raise NotImplementedError


def _skip_throwaway_local_clients() -> None:
    """ProcessingStep builds a LocalSagemakerClient (a session, several boto clients) only to read the
    name of one of its methods, about 0.1 s each; compilation never runs anything locally."""
    from sagemaker.mlops.workflow import steps

    steps.LocalSagemakerClient = _LocalClientNames


def _memoize_config_validation() -> None:
    """The SDK re-validates the same config against its JSON Schema on every lookup (~0.4 s each,
    dozens per definition). The pinned config never changes within a process: validate it once."""
    import json

    from sagemaker.core.config import config as config_module
    from sagemaker.core.config import config_manager
    from sagemaker.core.helper import session_helper

    original = config_manager.SageMakerConfig.validate_sagemaker_config
    if getattr(original, "_smpipe_cached", False):
        return

    @functools.lru_cache(maxsize=32)
    def _validate_text(text: str) -> None:
        original(json.loads(text))

    def cached(sagemaker_config=None):
        _validate_text(json.dumps(sagemaker_config, sort_keys=True, default=str))

    cached._smpipe_cached = True
    config_manager.SageMakerConfig.validate_sagemaker_config = staticmethod(cached)
    config_module.validate_sagemaker_config = cached
    session_helper.validate_sagemaker_config = cached

