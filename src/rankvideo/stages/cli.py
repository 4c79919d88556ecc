"""Glue between a Hydra entry script and a stage's `run(cfg)`.

A Hydra CLI run writes its outputs into its own run folder (`outputs/<date>/<time>/`), never into
the DVC pipeline's `artifacts/`: otherwise a manual run would silently overwrite outputs that
`dvc.lock` vouches for. Inputs still default to the pipeline's outputs, so
`python src/retrieve.py` ranks the benchmark that `dvc repro` built. A path given explicitly on
the command line (`paths.first_stage_run=my/run.trec`) is respected.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

# Which `paths.*` folders each stage writes (file paths inside them follow by interpolation).
OUTPUTS = {
    "synthesize": ("benchmark",),
    "proxies": ("proxies_dir",),
    "generate_queries": (),
    "retrieve": ("retrieve_dir",),
    "rerank": ("rerank_dir",),
    "rerank_stage1": ("rerank_stage1_dir",),
    "rerank_zeroshot": ("rerank_zeroshot_dir",),
    "evaluate": ("eval_dir",),
    "pretrain": ("pretrained",),
    "build_model": ("model_dir",),
    "teacher": ("teacher_dir",),
    "train": ("stage1_dir", "stage2_dir", "rerank_dir", "eval_dir"),
}


def redirect_outputs(cfg: DictConfig, stage: str, run_dir: str | Path, overrides: list[str]) -> DictConfig:
    """Point the stage's output paths into `run_dir` unless the user set them explicitly."""
    explicit = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    with open_dict(cfg):
        for key in OUTPUTS.get(stage, ()):
            if f"paths.{key}" in explicit:
                continue
            default = Path(str(OmegaConf.select(cfg, f"paths.{key}")))
            cfg.paths[key] = str(Path(run_dir) / default.name)
    return cfg


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors about the user's inputs or config, whose message says what is wrong and where."""
    from ..data.trec import FormatError
    from ..data.video import VideoReadError
    from ..data.synthetic.narration import NarrationToolError
    from ..proxies import MissingToolError
    from ..utils.validate import ConfigError
    from .build_model import PretrainedWeightsError
    from ..tracking import TrackingError
    from .evaluate import NothingToEvaluateError

    return (FormatError, ConfigError, VideoReadError, PretrainedWeightsError, NothingToEvaluateError, TrackingError,
            MissingToolError, NarrationToolError, OSError)


@contextlib.contextmanager
def one_line_errors(stage: str):
    """An error about the inputs or the config ends the command with one line on stderr and exit
    code 2, not a traceback; `HYDRA_FULL_ERROR=1` (or `RANKVIDEO_DEBUG=1`) keeps the traceback."""
    try:
        yield
    except _user_errors() as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("RANKVIDEO_DEBUG") == "1":
            raise
        print(f"error ({stage}): {e}", file=sys.stderr)
        sys.exit(2)


def hydra_main(cfg: DictConfig, stage: str) -> dict:
    """Body of every entry script's `@hydra.main` function. In a multirun, the job's MLflow runs
    are nested under the sweep's parent run (opened by `tracking.hydra_sweep`) and named after the
    job's overrides."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ..tracking import run_context
    from ..tracking.hydra_sweep import read_parent
    from . import stage_fn

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    cfg = redirect_outputs(cfg, stage, hc.runtime.output_dir, overrides)
    OmegaConf.resolve(cfg)
    if hc.mode != RunMode.MULTIRUN:
        with one_line_errors(stage):
            return stage_fn(stage)(cfg, source="cli")
    if stage == "train":
        from .train import check_selection_splits

        check_selection_splits(list(cfg.sweep.eval_splits), "a multirun")
    parent = read_parent(hc.sweep.dir)
    swept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in set(parent.get("swept", []))]
    tags = {"rankvideo.sweep": hc.sweep.dir, "rankvideo.job": hc.job.num, "rankvideo.overrides": " ".join(overrides)}
    with run_context(parent_run_id=parent.get("run_id"), tags=tags, name_suffix=" ".join(swept) or f"job {hc.job.num}"):
        return stage_fn(stage)(cfg, source="sweep")
