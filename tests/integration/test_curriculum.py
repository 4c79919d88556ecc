"""The reranker end to end on the tiny config: build the tiny Qwen3-VL, stage 1 (caption SFT),
stage 2 (stage2_loss over query groups) initialised from stage 1, rerank grouped by video, with
the MLflow record, resume, and LoRA adapter round trips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
import torch

from conftest import tiny_run_cfg
from rankvideo.data.trec import read_trec_run, rank_order
from rankvideo.stages import stage_fn

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("curriculum")
    cfg = tiny_run_cfg(root)
    for name in ("synthesize", "retrieve", "build_model", "stage1", "stage2"):
        stage_fn(name)(cfg, source="test", pipeline_cfg=cfg)
    return root, cfg


def _runs(cfg):
    mlflow.set_tracking_uri(f"sqlite:///{Path(cfg.paths.experiments).resolve()}/mlflow.db")
    return {r.info.run_name: r for r in mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")}


def test_stages_export_models_and_log_loss_terms(trained):
    root, cfg = trained
    for stage in ("stage1", "stage2"):
        model_dir = Path(cfg.paths[f"{stage}_dir"]) / "model"
        assert (model_dir / "config.json").exists() and (model_dir / "tokenizer.json").exists()
        assert (Path(cfg.paths[f"{stage}_dir"]) / "checkpoints" / "last.ckpt").exists()
    runs = _runs(cfg)
    client = mlflow.MlflowClient()
    s1, s2 = runs["stage1"], runs["stage2"]
    assert [m.step for m in client.get_metric_history(s1.info.run_id, "train/loss_caption")]
    for key in ("train/loss", "train/loss_pair", "train/loss_distill", "train/loss_point"):
        assert client.get_metric_history(s2.info.run_id, key), key
    assert 0.0 <= s2.data.metrics["val/ndcg_at_10"] <= 1.0
    # The perception check on held-out videos: caption loss with the right and with another video.
    m = s1.data.metrics
    assert m["val/loss_caption"] > 0 and m["val/loss_caption_shuffled"] > 0
    assert m["val/video_gain"] == pytest.approx(m["val/loss_caption_shuffled"] - m["val/loss_caption"], abs=1e-4)
    assert m["stage1/val_examples"] > 0
    assert s2.data.params["loss.distill"] == "5.0" and s2.data.params["curriculum.stage2.num_negatives"] == "2"


def test_stage2_starts_from_stage1(trained):
    """Stage 2's first weights are stage 1's export, not the freshly built model."""
    from rankvideo.models.tiny import load_backbone, state_dict_sha256

    _, cfg = trained
    built, _ = load_backbone(cfg.paths.model_dir)
    s1, _ = load_backbone(Path(cfg.paths.stage1_dir) / "model")
    s2, _ = load_backbone(Path(cfg.paths.stage2_dir) / "model")
    assert len({state_dict_sha256(built), state_dict_sha256(s1), state_dict_sha256(s2)}) == 3
    info = json.loads((Path(cfg.paths.model_dir) / "build_info.json").read_text())
    assert info["state_dict_sha256"] == state_dict_sha256(built)


def test_rerank_grouped_by_video_and_resumable(trained, monkeypatch):
    from rankvideo.models import grouped

    root, _ = trained
    cfg = tiny_run_cfg(root, "rerank=rankvideo")
    assert cfg.rerank.checkpoint == str(Path(cfg.paths.stage2_dir) / "model")
    calls = []
    real = grouped.score_queries_for_video
    monkeypatch.setattr(grouped, "score_queries_for_video", lambda *a, **k: calls.append(a[2].path) or real(*a, **k))
    info = stage_fn("rerank")(cfg, source="test")
    first = read_trec_run(cfg.paths.first_stage_run)
    reranked = read_trec_run(cfg.paths.reranked_run)
    test_q = {q for q in reranked}
    heads = {d for q in test_q for d in rank_order(first[q])[:10]}
    assert len(calls) == len(heads) == info["videos"]  # one vision pass per video
    assert info["pairs_scored"] == sum(min(10, len(first[q])) for q in test_q)
    for q in test_q:  # the tail after the head is the first-stage tail, in order
        order = rank_order(reranked[q])
        assert set(order[:10]) == set(rank_order(first[q])[:10])
        assert order[10:] == rank_order(first[q])[10:]
    # Resume: drop the last two completed videos from the progress file; only they are scored again.
    progress = Path(cfg.paths.rerank_dir) / "progress.jsonl"
    lines = progress.read_text().splitlines()
    progress.write_text("\n".join(lines[:-2]) + "\n")
    calls.clear()
    info2 = stage_fn("rerank")(cfg, source="test")
    assert len(calls) == 2 and info2["videos_resumed"] == info["videos"] - 2
    assert read_trec_run(cfg.paths.reranked_run) == reranked


def test_resume_continues_the_same_mlflow_run(tmp_path, trained):
    _, done_cfg = trained
    cfg = tiny_run_cfg(tmp_path)
    cfg.paths.benchmark, cfg.paths.first_stage_run = done_cfg.paths.benchmark, done_cfg.paths.first_stage_run
    cfg.paths.model_dir, cfg.paths.stage1_dir = done_cfg.paths.model_dir, done_cfg.paths.stage1_dir
    stage_fn("stage2")(cfg, source="test")
    first_id = (Path(cfg.paths.stage2_dir) / "mlflow_run_id").read_text()
    # An interruption after the last checkpoint but before the export.
    import shutil

    shutil.rmtree(Path(cfg.paths.stage2_dir) / "model")
    stage_fn("stage2")(cfg, source="test")
    runs = mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")
    assert [r.info.run_id for r in runs if r.info.run_name == "stage2"] == [first_id]
    assert runs[0].data.tags.get("rankvideo.resumed") == "true"
    assert (Path(cfg.paths.stage2_dir) / "model" / "config.json").exists()


def test_lora_adapter_round_trip(tmp_path, trained):
    """Under peft=lora stage 1 exports only the adapter; loading base + adapter gives the same
    scores as the trained module."""
    from rankvideo.data.benchmark import Benchmark
    from rankvideo.data.clips import ClipStore
    from rankvideo.models.scoring import encode_pairs, score_batch
    from rankvideo.modules.peft_setup import load_trained

    _, done = trained
    cfg = tiny_run_cfg(tmp_path, "peft=lora", "peft.target_modules='.*language_model.*\\.(q_proj|v_proj)'")
    cfg.paths.benchmark, cfg.paths.model_dir = done.paths.benchmark, done.paths.model_dir
    stage_fn("stage1")(cfg, source="test")
    export = Path(cfg.paths.stage1_dir) / "model"
    assert (export / "adapter_config.json").exists() and not (export / "model.safetensors").exists()
    model, processor = load_trained(str(export), base=done.paths.model_dir)
    bench = Benchmark(done.paths.benchmark)
    clips = ClipStore(bench, fps=2.0, max_frames=8)
    docs = [d.doc_id for d in bench.corpus()][:3]
    batch = encode_pairs(processor, [clips[d] for d in docs], ["a red circle"] * 3)
    with torch.no_grad():
        merged = score_batch(model, batch)
    # Same numbers from the unmerged PEFT model.
    from peft import PeftModel
    from rankvideo.models.tiny import load_backbone

    base, _ = load_backbone(done.paths.model_dir)
    peft_model = PeftModel.from_pretrained(base, str(export)).eval()
    with torch.no_grad():
        unmerged = score_batch(peft_model, batch, yes_no_ids=model._rankvideo_yes_no_ids)
    assert torch.allclose(merged, unmerged, atol=1e-4)
    ckpt = torch.load(Path(cfg.paths.stage1_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["state_dict"] and all("lora" in k for k in ckpt["state_dict"])  # adapter-only checkpoint


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_vision_keeps_the_vision_tower(tmp_path, trained, freeze):
    from safetensors.torch import load_file

    root, base_cfg = trained
    cfg = tiny_run_cfg(root, f"curriculum.stage1.freeze_vision={str(freeze).lower()}", f"paths.stage1_dir={tmp_path / 's1'}")
    stage_fn("stage1")(cfg, source="test")
    before = load_file(str(Path(cfg.paths.model_dir) / "model.safetensors"))
    after = load_file(str(tmp_path / "s1" / "model" / "model.safetensors"))
    visual = [k for k in before if ".visual." in f".{k}"]
    assert visual
    assert all(torch.equal(before[k], after[k]) for k in visual) == freeze
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in visual)


def test_rerank_takes_clips_by_the_model_configs_frame_rule_and_budget(trained, tmp_path, monkeypatch):
    """+model.frame_sampling / +model.visual_budget reach the clips the reranker scores."""
    import numpy as np

    from rankvideo.data.visual_budget import VisualBudget
    from rankvideo.models import grouped

    root, _ = trained
    out = tmp_path / "rerank"
    cfg = tiny_run_cfg(root, "rerank=rankvideo", "+model.frame_sampling=official",
                       "+model.visual_budget={min_pixels: 2048, max_pixels: 2048, total_pixels: 65536, factor: 16}",
                       f"paths.rerank_dir={out}", f"paths.reranked_run={out / 'run.trec'}")
    clips = []
    real = grouped.score_queries_for_video
    monkeypatch.setattr(grouped, "score_queries_for_video", lambda *a, **k: clips.append(a[2]) or real(*a, **k))
    info = stage_fn("rerank")(cfg, source="test")
    assert clips and info["videos"] == len(clips)
    for clip in clips:
        assert clip.visual_budget == VisualBudget(min_pixels=2048, max_pixels=2048, total_pixels=65536, factor=16)
        # 96 x 96 = 9216 pixels > 2048: both sides shrink by sqrt(4.5) = 2.12, 45.3 -> 32.
        assert clip.frames.shape[1:] == (32, 32, 3)
        # 3 s at 8 fps = 24 frames; 3 s * 2 fps = 6 frames over 0..23: 0, 4.6, 9.2, 13.8, 18.4, 23.
        np.testing.assert_allclose(clip.timestamps - clip.timestamps[0], np.array([0, 5, 9, 14, 18, 23]) / 8)
    assert (out / "run.trec").exists()


def test_accumulate_grad_batches_reaches_the_trainer(tmp_path):
    """curriculum.stageN.accumulate_grad_batches is the Lightning Trainer's; 1 where it is left out."""
    from conftest import compose_cfg
    from rankvideo.stages.curriculum import _trainer

    official = compose_cfg(["curriculum=official_code"])
    for stage, want in (("stage1", 16), ("stage2", 8)):
        trainer = _trainer(official, official.curriculum[stage], tmp_path / stage, logger=False)
        assert trainer.accumulate_grad_batches == want
    tiny = compose_cfg([])
    assert "accumulate_grad_batches" not in tiny.curriculum.stage2
    assert _trainer(tiny, tiny.curriculum.stage2, tmp_path / "tiny", logger=False).accumulate_grad_batches == 1


def test_official_code_curriculum_steps_once_per_8_groups(tmp_path, trained):
    """Stage 2 under curriculum=official_code on the tiny benchmark: one query group (1 positive +
    1 negative) per forward, an optimizer step per 8 groups (the last step of an epoch takes the
    remainder): ceil(groups / 8) steps per epoch."""
    import math

    _, done = trained
    cfg = tiny_run_cfg(tmp_path, "curriculum=official_code", "curriculum.stage2.epochs=1",
                       "curriculum.stage2.batch_size=1", "curriculum.stage2.val_depth=5")
    assert (cfg.curriculum.stage2.num_negatives, cfg.curriculum.stage2.negatives_with_replacement) == (1, True)
    for key in ("benchmark", "first_stage_run", "model_dir", "stage1_dir", "teacher_labels"):
        cfg.paths[key] = done.paths[key]
    metrics = stage_fn("stage2")(cfg, source="test")
    assert metrics["groups"] > 8
    assert metrics["steps"] == math.ceil(metrics["groups"] / 8)


@pytest.mark.slow  # about a minute: `python -m pytest -m slow`
def test_stage2_with_loader_workers_trains_the_same_weights(tmp_path, trained):
    """+curriculum.stage2.num_workers=2: batches are decoded and encoded in DataLoader workers
    beside the training step; the batches, so the weights, are those of the in-process loader, and
    the stage's fingerprint does not change."""
    from rankvideo.stages.curriculum import _fingerprint

    _, done = trained
    cfg = tiny_run_cfg(tmp_path, "+curriculum.stage2.num_workers=2")
    for key in ("benchmark", "first_stage_run", "model_dir", "stage1_dir", "teacher_labels"):
        cfg.paths[key] = done.paths[key]
    keys = ("seed", "curriculum.stage2")
    assert _fingerprint(cfg, keys) == _fingerprint(done, keys)
    stage_fn("stage2")(cfg, source="test")
    mine = Path(cfg.paths.stage2_dir) / "model" / "model.safetensors"
    theirs = Path(done.paths.stage2_dir) / "model" / "model.safetensors"
    assert mine.read_bytes() == theirs.read_bytes()
