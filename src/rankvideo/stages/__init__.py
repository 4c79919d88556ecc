"""One `run(cfg) -> dict` per pipeline stage. The Hydra entry scripts in src/ and the DVC stage
commands (`python -m rankvideo.stages NAME`) call the same functions; tests call them too."""

from __future__ import annotations

import functools
import importlib

# stage name -> (module, function)
STAGES = {
    "synthesize": ("synthesize", "run"),
    "proxies": ("proxies", "run"),
    "generate_queries": ("generate_queries", "run"),
    "retrieve": ("retrieve", "run"),
    "teacher": ("teacher", "run"),
    "pretrain": ("pretrain", "run"),
    "build_model": ("build_model", "run"),
    "stage1": ("curriculum", "run_stage1"),
    "stage2": ("curriculum", "run_stage2"),
    "rerank": ("rerank", "run"),
    "rerank_stage1": ("rerank", "run_stage1_only"),
    "rerank_zeroshot": ("rerank", "run_zeroshot"),
    "evaluate": ("evaluate", "run"),
    "train": ("train", "run"),
}


def stage_fn(name: str):
    """The stage's `run(cfg, ...)`, validating the config (`rankvideo.utils.validate`) and pinning the
    CPU threads and kernels (`rankvideo.utils.numerics`, from `trainer.cpu_*`) before any work."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    module, fn_name = STAGES[name]
    fn = getattr(importlib.import_module(f"rankvideo.stages.{module}"), fn_name)

    @functools.wraps(fn)
    def checked(cfg, *args, **kwargs):
        from omegaconf import OmegaConf

        from ..utils.numerics import pin_cpu_numerics
        from ..utils.validate import validate_config

        validate_config(cfg, name)
        # Pre-training pins its own threads (pretrain.threads); evaluation computes no torch numerics
        # and skips the seconds of importing torch.
        if name not in ("pretrain", "evaluate"):
            pin_cpu_numerics(OmegaConf.select(cfg, "trainer.cpu_threads", default=None),
                             OmegaConf.select(cfg, "trainer.cpu_kernels", default=None))
        return fn(cfg, *args, **kwargs)

    return checked
