"""Experiment tracking (MLflow): see `mlflow_run.tracked_run`; sweeps nest their runs under a
parent (`run_context`, `open_parent_run`, `close_parent_run`)."""

from .mlflow_run import StageRun, TrackingError, close_parent_run, open_parent_run, run_context, tracked_run

__all__ = ["StageRun", "TrackingError", "close_parent_run", "open_parent_run", "run_context", "tracked_run"]
