"""The local platform: runs a compiled definition JSON on this machine (parameters, expressions, caching,
Processing/Training/Tuning jobs in /opt/ml-shaped sandboxes, conditions, a local model registry).

May import pipelines.spec and pipelines.compile; nothing of pipelines.aws or .commands. Its store can point
at any S3-compatible endpoint (AWS_ENDPOINT_URL) but it never calls AWS control-plane APIs.
"""
