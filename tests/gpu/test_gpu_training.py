"""GPU checks (opt-in: `pytest -m gpu`; scripts/gpu_check.sh runs them on a lent GPU machine).

The curriculum on the tiny model in bf16 on one GPU with `trainer=gpu` and `trainer=fsdp` (full
fine-tuning and LoRA): the exported stage-2 model must reload and score like the trained module;
scoring throughput with and without grouping pairs by video. MLflow tracking is switched off when
mlflow is not installed on the GPU machine (its behaviour does not depend on the device and is
tested on the CPU)."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_run_cfg
from rankvideo.stages import stage_fn

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _cfg(root: Path, *overrides: str):
    extra = [] if importlib.util.find_spec("mlflow") else ["tracking.enabled=false"]
    return tiny_run_cfg(root, *extra, *overrides)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Benchmark, first-stage run and tiny backbone, shared by the training checks."""
    root = tmp_path_factory.mktemp("gpu")
    cfg = _cfg(root)
    for name in ("synthesize", "retrieve", "build_model"):
        stage_fn(name)(cfg, source="test")
    return root


def _scores_after_reload(cfg, pairs):
    from rankvideo.data.benchmark import Benchmark
    from rankvideo.data.clips import ClipStore
    from rankvideo.models.scoring import encode_pairs, score_batch
    from rankvideo.modules.peft_setup import load_trained

    model, proc = load_trained(str(Path(cfg.paths.stage2_dir) / "model"), base=str(cfg.paths.model_dir))
    clips = ClipStore(Benchmark(cfg.paths.benchmark), fps=float(cfg.curriculum.fps), max_frames=8)
    model = model.cuda()
    with torch.no_grad():
        batch = encode_pairs(proc, [clips[d] for _, d in pairs], [q for q, _ in pairs])
        together = score_batch(model, batch).float().cpu()
        alone = torch.cat([score_batch(model, encode_pairs(proc, [clips[d]], [q])).float().cpu() for q, d in pairs])
    return together, alone


@pytest.mark.parametrize("trainer,peft", [("gpu", "none"), ("fsdp", "none"), ("fsdp", "lora")])
def test_curriculum_trains_and_exports_on_one_gpu(prepared, trainer, peft):
    from rankvideo.data.benchmark import Benchmark

    cfg = _cfg(prepared, f"trainer={trainer}", "trainer.devices=1", f"peft={peft}",
               f"paths.stage1_dir={prepared / trainer / peft / 's1'}", f"paths.stage2_dir={prepared / trainer / peft / 's2'}")
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    m1 = stage_fn("stage1")(cfg, source="test")
    m2 = stage_fn("stage2")(cfg, source="test")
    took = time.perf_counter() - t
    out = Path(cfg.paths.stage2_dir) / "model"
    assert (out / ("adapter_config.json" if peft == "lora" else "config.json")).exists()
    assert m1["steps"] > 0 and m2["steps"] > 0
    bench = Benchmark(cfg.paths.benchmark)
    q = bench.queries("train")[0]
    docs = [d.doc_id for d in bench.corpus()][:3]
    together, alone = _scores_after_reload(cfg, [(q.text, d) for d in docs])
    assert torch.isfinite(together).all()
    # Same score alone and in a batch (left padding, answer position read per row).
    assert torch.allclose(together, alone, atol=2e-3), (together, alone)
    print(f"\n[{trainer}/{peft}] stage1 {m1['steps']} steps + stage2 {m2['steps']} steps in {took:.1f} s, "
          f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB, scores {together.tolist()}")


def test_grouped_scoring_throughput(tmp_path):
    import numpy as np

    from rankvideo.data.video import Clip
    from rankvideo.models.grouped import score_queries_for_video
    from rankvideo.models.scoring import encode_pairs, score_batch
    from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone

    build_tiny_qwen3_vl(tmp_path / "m", corpus=["a red circle moves left to right"] * 20)
    model, proc = load_backbone(tmp_path / "m")
    model = model.cuda().eval()
    rng = np.random.default_rng(0)
    clip = Clip(rng.integers(0, 255, (12, 96, 96, 3), dtype=np.uint8), np.arange(12) * 0.5, 8.0, "x")
    queries = [f"query {i} with a red circle" for i in range(64)]
    with torch.no_grad():
        score_batch(model, encode_pairs(proc, [clip] * 8, queries[:8]))  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        t = time.perf_counter()
        ref = score_batch(model, encode_pairs(proc, [clip] * 64, queries))
        torch.cuda.synchronize()
        plain = 64 / (time.perf_counter() - t)
        t = time.perf_counter()
        got = score_queries_for_video(model, proc, clip, queries, batch_size=64)
        torch.cuda.synchronize()
        grouped = 64 / (time.perf_counter() - t)
    assert torch.allclose(ref.cpu(), torch.tensor(got), atol=1e-3)
    print(f"\npairs/s on the tiny model: plain {plain:.0f}, grouped by video {grouped:.0f}")
