"""Stage `train`: the reranker's two-stage curriculum (stage 1 perception SFT, stage 2 reranking).

Not in this version: the only reranker is `rerank=passthrough`, which has nothing to train. The
RankVideo reranker (tiny offline Qwen3-VL by default, Qwen3-VL-8B by config) brings its model,
losses and Lightning modules here; `src/train.py` and `dvc.yaml` already leave the seam for it.
"""

from __future__ import annotations

from omegaconf import DictConfig


class NothingToTrain(RuntimeError):
    pass


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    raise NothingToTrain(
        f"rerank={cfg.rerank.name}: there is no trainable reranker in this version of rankvideo "
        "(the passthrough reranker keeps the first-stage order). Run the pipeline with `dvc repro`; "
        "stage-1/stage-2 training arrives with the RankVideo reranker."
    )
