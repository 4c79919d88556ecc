"""A Lightning logger that writes into the stage's MLflow run (opened by `tracked_run`), so
per-step loss terms and per-epoch validation land next to the config, commit and data version.
Params are logged once by `tracked_run`; Lightning's hyperparameters are not logged again
(MLflow refuses a param logged twice with a changed value)."""

from __future__ import annotations

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from .mlflow_run import StageRun


class StageRunLogger(Logger):
    def __init__(self, stage_run: StageRun, name: str = "mlflow", step_offset: int = 0):
        super().__init__()
        self._run, self._name = stage_run, name
        # Added to every step: a run that trains in rounds (continued pre-training) keeps one step axis.
        self._offset = int(step_offset)

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._run.run_id or "disabled"

    @property
    @rank_zero_experiment
    def experiment(self) -> StageRun:
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # the resolved config is already the run's params

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self._run.log_metrics({k: v for k, v in metrics.items() if k != "epoch"},
                              step=None if step is None else step + self._offset)
