"""What every program shares: StepError and run_main (one line and exit 2 for bad input), atomic JSON
writes, metrics, progress lines, tracking (wandb and MLflow), and the five user functions with their
defaults. Imports only steps.contract."""
