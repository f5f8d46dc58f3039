"""The serving program's parts: the web app on SageMaker's hosting contract, request formats, the batcher,
the predictor (model), CUDA graphs, the shared model process (engine) and the serving processes (workers).
Imports steps.core and steps.inference."""
