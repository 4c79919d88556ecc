"""Hyperparameter search: an Optuna study over stage-2 training (see `study.run_study`)."""

from .study import PruningCallback, run_study

__all__ = ["PruningCallback", "run_study"]
