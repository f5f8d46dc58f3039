"""What Reconcile and Prepare do to records: cleaning, counting, capping. Imports steps.core."""
