"""Forward passes over many rows: the batch planner (planner), token matrices and collation (batching) and the
TorchScript runner (torchscript) that evaluation, export, training and serving share. Imports steps.core."""
