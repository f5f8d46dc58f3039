"""Compile one YAML experiment spec into a SageMaker Pipeline, and run it locally or on AWS."""
