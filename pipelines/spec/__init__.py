"""The specification layer: experiment.yaml (+ base template, + key=value overrides) → a validated
``Experiment``, with every problem reported at once as file:line:column.

Owns the spec model, the YAML reader, cross-field rules, user-function checks, pipeline-parameter
declarations and the JSON Schema export. Imports nothing of pipelines.compile, .local, .aws or .commands.
"""
