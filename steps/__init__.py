"""The data-science layer: what every job runs. Imports nothing of pipelines/.

Programs (the launcher's PROGRAMS, one module each, `python -m steps.<program> --help`): reconcile, prepare,
train, export, evaluate, serve. They import libraries, never each other. Libraries, by what they own:
core (errors and exits, JSON writes, metrics, progress lines, the user functions and their defaults),
data (what Reconcile and Prepare do to records), inference (the batch planner and the TorchScript runner that
evaluation, export and serving share), training (setup, checkpoints, throughput, tracking, the report) and
serving (the web app, batcher, request formats, model, CUDA graphs, worker processes). contract.py and
launcher.py are baked into the image and run before the code bundle is unpacked: standard library only.
"""
