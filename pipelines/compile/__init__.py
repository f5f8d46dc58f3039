"""The compile layer: a validated spec → a plan (names, URIs, parameters, code bundle) → SageMaker SDK v3
objects, one small builder per step kind → the canonical definition JSON; plus the offline check of every
job step against botocore's API model and the golden definitions.

Pure: no network, no credentials, no clock. May import pipelines.spec; nothing of .local, .aws or .commands.
"""
