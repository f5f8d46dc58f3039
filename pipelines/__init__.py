"""smpipe: one YAML experiment spec compiled into a SageMaker Pipeline that also runs on this machine.

Layers, each a package; imports point inward only (tests/test_layers.py enforces it from the import graph):

    pipelines.commands   the command front door (`python -m pipelines …`): may import every layer
    pipelines.aws        the only code that calls AWS: upsert, start, status, schedules, images, IAM
    pipelines.local      the local platform: executes a compiled definition here (no aws)
    pipelines.compile    spec → plan → SageMaker SDK objects → canonical definition JSON (no local, no aws)
    pipelines.spec       YAML → validated experiment spec, every error at once (imports no other layer)
    steps/               the programs every job runs (imports nothing of pipelines)
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project checkout: templates/, steps/, experiments/
