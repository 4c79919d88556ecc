"""An Optuna study of stage-2 training (by default the loss weights) against validation nDCG@10.

Each trial composes the training config with Hydra's compose API (the study's base overrides plus
the trial's suggested values), runs one `python src/train.py` job in its own folder (stage 1
reused, stage 2 trained, val reranked and evaluated) and returns the job's val nDCG@10.

- Storage: any SQLAlchemy URL (default sqlite under experiments/), so workers on many machines can
  share one study; `load_if_exists` makes a rerun of the command resume the study. With an RDB
  storage, trials send heartbeats: a trial whose worker died is marked failed and retried once.
- Sampler: TPE, seeded. Pruner: median (or threshold, or none) on the per-epoch val nDCG@10 that
  stage 2 logs (`val/ndcg@10`, first-stage top `curriculum.stage2.val_depth`).
- A trial that raises (a bad config, out of memory) is marked FAIL and the study goes on.
- MLflow: one parent run per study (its id is kept in the study, so a resumed study keeps it);
  every trial's runs are nested under it, tagged with the trial number and overrides. At the end
  the parent gets the best value, the best params, the command that reruns the best trial, and
  Optuna's plots (optimisation history, parameter importances, parallel coordinates).
"""

from __future__ import annotations

import gc
import logging
import math
import shlex
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from ..stages.cli import redirect_outputs
from ..tracking import close_parent_run, open_parent_run, run_context
from ..utils.io import absolute_sqlite_url, write_json

log = logging.getLogger(__name__)

PRUNE_MONITOR = "val/ndcg@10"  # stage 2's per-epoch validation (first-stage top val_depth)


class PruningCallback(L.Callback):
    """Reports the per-epoch validation metric to the trial; stops training when the pruner says so
    (the caller then raises `optuna.TrialPruned`)."""

    def __init__(self, trial, monitor: str = PRUNE_MONITOR):
        self.trial, self.monitor = trial, monitor
        self.pruned = False
        self.pruned_at: int | None = None
        self.reported: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        epoch = int(trainer.current_epoch)
        self.trial.report(value, step=epoch)
        self.reported.append((epoch, value))
        if self.trial.should_prune():
            self.pruned, self.pruned_at = True, epoch
            trainer.should_stop = True


def search_space(space: DictConfig | dict) -> dict[str, dict]:
    """Nested `{loss: {pairwise: {low, high, log}}}` -> {"loss.pairwise": spec}. A spec is a float
    range (`low`, `high`, optional `log`, `step`) or a categorical (`choices`)."""
    out: dict[str, dict] = {}

    def walk(node, prefix):
        node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        for k, v in node.items():
            key = f"{prefix}{k}"
            if not isinstance(v, dict):
                raise ValueError(f"tune.space.{key}: expected a spec {{low, high[, log]}} or {{choices}}, got {v!r}")
            if "choices" in v or "low" in v:
                if "low" in v and not (float(v["low"]) < float(v["high"])):
                    raise ValueError(f"tune.space.{key}: low {v['low']} must be below high {v['high']}")
                if v.get("log") and float(v["low"]) <= 0:
                    raise ValueError(f"tune.space.{key}: a log range needs low > 0, got {v['low']}")
                out[key] = v
            else:
                walk(v, key + ".")

    walk(space, "")
    if not out:
        raise ValueError("tune.space is empty: name at least one value to tune, e.g. loss.pairwise: {low: 0.1, high: 10, log: true}")
    return out


def flat_values(node: DictConfig | dict) -> dict[str, Any]:
    """{loss: {pairwise: 1.0}} -> {"loss.pairwise": 1.0} (an enqueued trial)."""
    node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in flat_values(v).items()})
        else:
            out[str(k)] = v
    return out


def suggest(trial, space: dict[str, dict]) -> dict[str, Any]:
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, list(spec["choices"]))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)),
                                              step=spec.get("step"))
    return values


def as_overrides(values: dict[str, Any]) -> list[str]:
    return [f"{k}={_hydra_value(v)}" for k, v in values.items()]


def _hydra_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return repr(v)  # round-trips exactly
    return str(v)


def make_storage(tcfg: DictConfig):
    """None (in memory) or an RDB storage with heartbeats and one retry of a dead worker's trial."""
    import optuna

    url = make_storage_url(tcfg)
    if not url:
        return None
    hb = tcfg.get("heartbeat_interval")
    if not hb:
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():  # heartbeats are "experimental" in optuna 5 (since 2.8)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
        return optuna.storages.RDBStorage(url, heartbeat_interval=int(hb), grace_period=2 * int(hb),
                                          heartbeat_stale_trial_callback=retry)


def make_storage_url(tcfg: DictConfig) -> str | None:
    """`tune.storage` with a relative sqlite path made absolute; None for an in-memory study."""
    url = tcfg.get("storage")
    return absolute_sqlite_url(str(url)) if url else None


def make_pruner(pcfg: DictConfig | None):
    import optuna

    kind = str((pcfg or {}).get("type", "none"))
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(pcfg.n_startup_trials), n_warmup_steps=int(pcfg.n_warmup_steps))
    if kind == "threshold":
        return optuna.pruners.ThresholdPruner(lower=float(pcfg.lower), n_warmup_steps=int(pcfg.get("n_warmup_steps", 0)))
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"tune.pruner.type={kind!r}: expected median | threshold | none")


def redact(url: str | None) -> str:
    if not url:
        return "in-memory"
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def load_study(tcfg: DictConfig):
    """Create or resume the study. The TPE seed is `tune.seed` plus the number of trials the study
    already has: a resumed study is as reproducible as a new one, and does not replay the random
    start-up trials of the invocation before it."""
    import optuna

    def sampler(offset: int):
        with warnings.catch_warnings():  # multivariate TPE is "experimental" in optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=int(tcfg.seed) + offset, n_startup_trials=int(tcfg.sampler.n_startup_trials),
                                              multivariate=bool(tcfg.sampler.multivariate))

    study = optuna.create_study(study_name=str(tcfg.study_name), storage=make_storage(tcfg), sampler=sampler(0),
                                pruner=make_pruner(tcfg.get("pruner")), direction="maximize", load_if_exists=True)
    if study.trials:
        study.sampler = sampler(len(study.trials))
    return study


def train_command(overrides: list[str], *extra: str) -> str:
    return " ".join(["python", "src/train.py", *(shlex.quote(o) for o in [*overrides, *extra])])


def run_study(cfg: DictConfig, base_overrides: list[str], out_dir: str | Path) -> dict:
    """Run `tune.n_trials` more trials of the study `tune.study_name` (created or resumed), each in
    `out_dir/trial_<number>`; write `out_dir/best.json` and the plots; returns the summary.
    Needs an initialised Hydra (inside `@hydra.main`, or `initialize_config_dir` in tests)."""
    import optuna
    from hydra import compose

    from ..stages.train import check_selection_splits, run as train_run

    tcfg = cfg.tune
    out_dir = Path(out_dir)
    space = search_space(tcfg.space)
    check_selection_splits(list(cfg.sweep.eval_splits), "an Optuna study")
    metric = str(cfg.sweep.metric)
    study = load_study(tcfg)
    _check_same_base(study, base_overrides)
    for values in tcfg.get("enqueue") or []:
        study.enqueue_trial({k: v for k, v in flat_values(values).items() if k in space}, skip_if_exists=True)
    parent = _parent_run(cfg, study, tcfg, base_overrides)

    def objective(trial) -> float:
        values = suggest(trial, space)
        trial_overrides = as_overrides(values)
        overrides = [*base_overrides, *trial_overrides]
        trial.set_user_attr("overrides", trial_overrides)
        trial_dir = out_dir / f"trial_{trial.number:04d}"
        trial.set_user_attr("output_dir", str(trial_dir))
        job = compose(config_name="config", overrides=overrides)
        job = redirect_outputs(job, "train", trial_dir, overrides)
        OmegaConf.resolve(job)
        pruning = PruningCallback(trial)
        tags = {"optuna.study": tcfg.study_name, "optuna.trial": trial.number, "rankvideo.overrides": " ".join(overrides)}
        log.info("trial %d: %s", trial.number, " ".join(trial_overrides))
        try:
            with run_context(parent_run_id=parent, tags=tags, name_suffix=f"trial {trial.number}: " + " ".join(trial_overrides)):
                result = train_run(job, source="tune", callbacks=[pruning])
        finally:
            _free_memory()
        run_id = result["stage2"].get("mlflow_run_id")
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
        if pruning.pruned:
            _tag_run(cfg, run_id, {"optuna.state": "PRUNED"})
            raise optuna.TrialPruned(f"trial {trial.number} pruned at epoch {pruning.pruned_at} "
                                     f"({PRUNE_MONITOR} {pruning.reported[-1][1]:.4f})")
        value = float(result["eval"]["val"]["rerank"][metric])
        if math.isnan(value):
            raise ValueError(f"trial {trial.number}: val {metric} is NaN")
        _tag_run(cfg, run_id, {"optuna.state": "COMPLETE"})
        return value

    status = "FAILED"
    try:
        study.optimize(objective, n_trials=int(tcfg.n_trials), timeout=tcfg.get("timeout"), catch=(Exception,),
                       gc_after_trial=True)
        status = "FINISHED"
    finally:
        summary = summarise(study, base_overrides, metric)
        write_json(out_dir / "best.json", summary)
        plots = save_plots(study, out_dir / "plots")
        best = summary.get("best") or {}
        close_parent_run(cfg, parent, status=status,
                         metrics={f"best/val/rerank/{metric}": best.get("value"),
                                  **{f"trials/{k}": v for k, v in summary["trials"].items()}},
                         tags={"optuna.best_trial": best.get("number", ""), "rankvideo.best_command": best.get("command", "")},
                         artifacts={out_dir / "best.json": "study", **{p: "plots" for p in plots}})
    _print_summary(summary)
    return summary


def summarise(study, base_overrides: list[str], metric: str) -> dict:
    import optuna

    states = [t.state for t in study.trials]
    counts = {s.name.lower(): states.count(s) for s in optuna.trial.TrialState}
    summary: dict[str, Any] = {"study": study.study_name, "metric": f"val {metric}", "trials": counts}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        overrides = [*base_overrides, *best.user_attrs.get("overrides", as_overrides(best.params))]
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params,
                           "mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
                           "output_dir": best.user_attrs.get("output_dir"),
                           "command": train_command(overrides),
                           "test_command": train_command(overrides, "sweep.eval_splits=[val,test]")}
    return summary


def save_plots(study, folder: Path) -> list[Path]:
    """Optuna's optimisation history, parameter importances and parallel coordinates as PNGs
    (each skipped with a logged reason when the study cannot draw it yet)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, draw in (("optimization_history", ovm.plot_optimization_history),
                       ("param_importances", ovm.plot_param_importances),
                       ("parallel_coordinate", ovm.plot_parallel_coordinate)):
        try:
            with warnings.catch_warnings():  # the matplotlib backend is "experimental" since optuna 2.2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = draw(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            path = folder / f"{name}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            saved.append(path)
        except Exception as e:  # too few trials, a single parameter...
            log.warning("optuna plot %s not drawn: %s", name, e)
    return saved


def _check_same_base(study, base_overrides: list[str]) -> None:
    """The trials of one study must share their base config: resuming with other overrides would
    compare apples with pears."""
    stored = study.user_attrs.get("base_overrides")
    if stored is None:
        study.set_user_attr("base_overrides", list(base_overrides))
    elif list(stored) != list(base_overrides):
        raise ValueError(f"study {study.study_name!r} was run with the base overrides {stored}, this command has "
                         f"{list(base_overrides)}: resume it with the same overrides, or name a new study (tune.study_name=...)")


def _parent_run(cfg: DictConfig, study, tcfg: DictConfig, base_overrides: list[str]) -> str | None:
    previous = study.user_attrs.get("mlflow_parent_run_id")
    try:
        run_id = open_parent_run(cfg, f"study {tcfg.study_name}", run_id=previous, tags={
            "rankvideo.stage": "study", "optuna.study": tcfg.study_name, "optuna.storage": redact(make_storage_url(tcfg)),
            "mlflow.note.content": "python src/tune.py " + " ".join(shlex.quote(o) for o in base_overrides)},
            params={"tune.base_overrides": " ".join(base_overrides), "tune.space": OmegaConf.to_yaml(tcfg.space)})
    except Exception as e:  # the stored parent is not in this MLflow store
        if previous is None:
            raise
        log.warning("MLflow parent run %s of study %s not reopened (%s); opening a new one", previous, tcfg.study_name, e)
        run_id = open_parent_run(cfg, f"study {tcfg.study_name}", tags={"rankvideo.stage": "study", "optuna.study": tcfg.study_name})
    if run_id and run_id != previous:
        study.set_user_attr("mlflow_parent_run_id", run_id)
    return run_id


def _tag_run(cfg: DictConfig, run_id: str | None, tags: dict) -> None:
    if not run_id:
        return
    from mlflow import MlflowClient

    from ..tracking.mlflow_run import _experiment

    uri, _, _ = _experiment(cfg.tracking)
    client = MlflowClient(uri)
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v))


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _print_summary(summary: dict) -> None:
    print(f"\nstudy {summary['study']}: trials {summary['trials']}")
    best = summary.get("best")
    if not best:
        print("no completed trial yet")
        return
    print(f"best trial {best['number']}: {summary['metric']} = {best['value']:.4f}  params {best['params']}")
    print(f"rerun it:            {best['command']}")
    print(f"its test numbers:    {best['test_command']}")

