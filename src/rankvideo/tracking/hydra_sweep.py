"""A Hydra callback that gives every multirun (`python src/train.py -m loss.pairwise=0.1,0.5`) one
MLflow parent run; the jobs' runs are nested under it (see `stages.cli.hydra_main`).

The parent run's id is written to `<sweep dir>/mlflow_parent_run.json`, where every job finds it,
in this process or in another one (a joblib or SLURM launcher). At the end of the sweep the parent
gets the best job's validation metric, its overrides and run id, and is closed.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ..utils.io import write_json
from .mlflow_run import close_parent_run, open_parent_run

log = logging.getLogger(__name__)

PARENT_FILE = "mlflow_parent_run.json"


def read_parent(sweep_dir: str | Path) -> dict:
    """{"run_id": parent run id, "swept": the keys the sweep varies}; {} without a parent."""
    path = Path(sweep_dir) / PARENT_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a multirun varies (`loss.pairwise=0.1,0.5`, `range(...)`, `choice(...)`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return [o.key_or_group for o in OverridesParser.create().parse_overrides(overrides) if o.is_sweep_override()]


def _plain(config: DictConfig) -> DictConfig:
    """The task config without Hydra's own node (resolvable outside a running job)."""
    cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    return cfg


class MLflowSweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        hc = config.hydra
        sweep_dir = Path(str(hc.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = list(hc.overrides.task)
        app = str(hc.job.name)
        if app == "train" and "sweep" in config:
            from ..stages.train import check_selection_splits

            check_selection_splits(list(config.sweep.eval_splits), "a multirun")  # before any run is opened
        swept = swept_keys(overrides)
        varied = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in set(swept)]
        # Sweeps a config declares (`hydra.sweeper.params`, e.g. +experiment=paper_table7).
        for key, values in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items():
            if key not in swept:
                swept.append(str(key))
                varied.append(f"{key}={values}")
        run_id = open_parent_run(
            _plain(config), f"sweep {app}: " + " ".join(varied),
            tags={"rankvideo.stage": "sweep", "rankvideo.sweep": str(sweep_dir), "rankvideo.app": app,
                  "mlflow.note.content": "python src/" + app + ".py -m " + " ".join(shlex.quote(o) for o in overrides)},
            params={"sweep.overrides": " ".join(overrides)})
        if run_id:
            write_json(sweep_dir / PARENT_FILE, {"run_id": run_id, "swept": swept})
            log.info("sweep: MLflow parent run %s; jobs are nested under it", run_id)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A failed job marks the parent FAILED at once: Hydra's basic sweeper raises after the
        batch and never calls on_multirun_end then."""
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if job_return is None or job_return.status != JobStatus.FAILED or config.hydra.mode != RunMode.MULTIRUN:
            return
        run_id = read_parent(str(config.hydra.sweep.dir)).get("run_id")
        if run_id:
            overrides = " ".join(config.hydra.overrides.task)
            close_parent_run(_plain(config), run_id, status="FAILED",
                             tags={"rankvideo.failed_job": f"{config.hydra.job.num}: {overrides}",
                                   "rankvideo.failed_error": repr(job_return._return_value)[:500]})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        run_id = read_parent(sweep_dir).get("run_id")
        if not run_id:
            return
        cfg = _plain(config)
        metric = f"val/rerank/{cfg.sweep.metric}".replace("@", "_at_")
        best = _best_child(cfg, run_id, metric)
        tags = {}
        metrics = {}
        if best is not None:
            metrics[f"best/{metric}"] = best.data.metrics[metric]
            tags = {"rankvideo.best_run": best.info.run_id, "rankvideo.best_overrides": best.data.tags.get("rankvideo.overrides", "")}
            log.info("sweep: best %s = %.4f (%s)", metric, metrics[f"best/{metric}"], tags["rankvideo.best_overrides"])
        from mlflow import MlflowClient

        from .mlflow_run import _experiment

        failed = MlflowClient(_experiment(cfg.tracking)[0]).get_run(run_id).info.status == "FAILED"
        close_parent_run(cfg, run_id, metrics=metrics, tags=tags, status="FAILED" if failed else "FINISHED")


def _best_child(cfg: DictConfig, parent: str, metric: str):
    from mlflow import MlflowClient

    from .mlflow_run import _experiment

    uri, _, exp_id = _experiment(cfg.tracking)
    runs = MlflowClient(uri).search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=5000)
    scored = [r for r in runs if metric in r.data.metrics]
    return max(scored, key=lambda r: r.data.metrics[metric]) if scored else None
