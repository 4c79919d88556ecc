"""GPU checks (opt-in: `pytest -m gpu`; scripts/gpu_check.sh runs them on a lent GPU machine).

Stage 2 on the tiny model in bf16 on one GPU, and scoring throughput with and without grouping
pairs by video."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_cfg
from rankvideo.stages import stage_fn

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_curriculum_on_one_gpu_bf16(tmp_path):
    cfg = compose_cfg(["debug=tiny", "trainer=gpu", "trainer.devices=1", f"paths.artifacts={tmp_path / 'a'}",
                       f"paths.experiments={tmp_path / 'e'}", "data.num_workers=1"])
    OmegaConf.resolve(cfg)
    for name in ("synthesize", "retrieve", "build_model", "stage1", "stage2"):
        stage_fn(name)(cfg, source="test")
    assert (Path(cfg.paths.stage2_dir) / "model" / "config.json").exists()
    print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")


def test_grouped_scoring_throughput(tmp_path):
    from rankvideo.data.video import Clip
    from rankvideo.models.grouped import score_queries_for_video
    from rankvideo.models.scoring import encode_pairs, score_batch
    from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone
    import numpy as np

    build_tiny_qwen3_vl(tmp_path / "m", corpus=["a red circle moves left to right"] * 20)
    model, proc = load_backbone(tmp_path / "m")
    model = model.cuda().eval()
    rng = np.random.default_rng(0)
    clip = Clip(rng.integers(0, 255, (12, 96, 96, 3), dtype=np.uint8), np.arange(12) * 0.5, 8.0, "x")
    queries = [f"query {i} with a red circle" for i in range(64)]
    with torch.no_grad():
        t = time.perf_counter()
        ref = score_batch(model, encode_pairs(proc, [clip] * 64, queries))
        plain = 64 / (time.perf_counter() - t)
        t = time.perf_counter()
        got = score_queries_for_video(model, proc, clip, queries, batch_size=64)
        grouped = 64 / (time.perf_counter() - t)
    assert torch.allclose(ref.cpu(), torch.tensor(got), atol=1e-3)
    print(f"pairs/s: plain {plain:.0f}, grouped by video {grouped:.0f}")
