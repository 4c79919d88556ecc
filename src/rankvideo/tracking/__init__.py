"""Experiment tracking (MLflow): see `mlflow_run.tracked_run`."""

from .mlflow_run import StageRun, tracked_run

__all__ = ["StageRun", "tracked_run"]
