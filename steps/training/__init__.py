"""The training program's parts: model and loader setup, checkpoints and resume, throughput and MFU,
the report and curves. Imports steps.core and steps.inference."""
