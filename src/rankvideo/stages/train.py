"""`python src/train.py`: the whole curriculum, stage 1 then stage 2 initialised from it, into the
run's own folder (DVC runs the two as separate stages, `stage1` and `stage2`)."""

from __future__ import annotations

from omegaconf import DictConfig

from .curriculum import run_stage1, run_stage2


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    s1 = run_stage1(cfg, source=source, pipeline_cfg=pipeline_cfg)
    s2 = run_stage2(cfg, source=source, pipeline_cfg=pipeline_cfg)
    return {"stage1": s1, "stage2": s2}
