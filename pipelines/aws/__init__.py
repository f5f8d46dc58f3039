"""The AWS layer, the only code that calls AWS: upload the code bundle and upsert the pipeline, start and
describe executions, reconcile EventBridge Scheduler schedules, build and push the job image, and print
least-privilege IAM policies.

May import pipelines.spec and pipelines.compile; nothing of pipelines.local or .commands.
"""
