"""Each SDK internal that pipelines/compile/sdk.py patches at run time still exists and still means what the
patch assumes. An SDK upgrade that renames or reshapes one fails here, by name, not as a slow or online compile."""

from __future__ import annotations

import ast
import inspect

import pytest

from pipelines.compile import sdk


@pytest.fixture(scope="module", autouse=True)
def _imported():
    sdk.prepare_environment("us-east-1")
    with sdk.offline():
        import sagemaker.mlops.workflow.steps  # noqa: F401 - the SDK needs a region and keys at import


def test_botocore_still_creates_each_sessions_loader_through_create_loader():
    import botocore.loaders
    import botocore.session

    assert callable(botocore.loaders.create_loader)
    assert "create_loader(" in inspect.getsource(botocore.session.Session), "sessions no longer call create_loader"


def test_steps_read_only_method_names_of_the_local_client_they_build():
    """_LocalClientNames stands in for LocalSagemakerClient: every attribute the steps module reads of an
    instance must exist on the stand-in."""
    from sagemaker.mlops.workflow import steps

    tree = ast.parse(inspect.getsource(steps))
    read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "LocalSagemakerClient"}
    assert read, "the steps module no longer builds a LocalSagemakerClient: drop _skip_throwaway_local_clients"
    assert read <= set(dir(sdk._LocalClientNames)), read - set(dir(sdk._LocalClientNames))
    assert hasattr(steps, "LocalSagemakerClient")


def test_config_validation_is_still_looked_up_where_the_patch_replaces_it():
    from sagemaker.core.config import config as config_module
    from sagemaker.core.config import config_manager
    from sagemaker.core.helper import session_helper

    for owner in (config_module, session_helper):
        assert hasattr(owner, "validate_sagemaker_config"), owner.__name__
    assert hasattr(config_manager.SageMakerConfig, "validate_sagemaker_config")


def test_pipeline_session_still_asks_default_bucket():
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    assert callable(PipelineSession.default_bucket)


def test_the_patched_session_compiles_offline_with_the_patches_in_place():
    from sagemaker.mlops.workflow import steps

    session = sdk.offline_session("us-east-1", "bucket-x")
    assert session.default_bucket() == "bucket-x"
    assert steps.LocalSagemakerClient is sdk._LocalClientNames
