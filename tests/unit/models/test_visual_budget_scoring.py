"""Clips fit to a visual budget through the real (tiny) Qwen3-VL processor: the grid the processor
reports is the one the budget implies (it does not resize again), clips without a budget are
encoded exactly as before, and the grouped path agrees with the per-pair path."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub

import numpy as np
import pytest
import torch

from rankvideo.data.video import Clip
from rankvideo.data.visual_budget import VisualBudget, fit_clip, tokens_per_frame_pair
from rankvideo.models.grouped import encode_queries_for_video, score_queries_for_video
from rankvideo.models.scoring import encode_pairs, score_batch, video_inputs
from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone

CORPUS = ["a red square moves to the left", "a blue circle bounces on the floor", "is the frame red"]
OFFICIAL = VisualBudget(min_pixels=128 * 32 * 32, max_pixels=128 * 32 * 32, total_pixels=32 * 128 * 32 * 32, factor=32)
# At the tiny backbone's own factor (patch 8 x merge 2 = 16): 8 tokens per frame pair.
TINY = VisualBudget(min_pixels=2048, max_pixels=2048, total_pixels=16 * 2048, factor=16)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    path = build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny") / "qwen3vl", corpus=CORPUS, seed=0)
    torch.manual_seed(0)
    return load_backbone(path)


def textured(frames: int, height: int, width: int, seed: int = 0, path: str = "synthetic") -> Clip:
    f = np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    return Clip(frames=f, timestamps=np.arange(frames) / 2.0, native_fps=2.0, path=path)


def video_tokens(processor, batch) -> list[int]:
    return (batch["input_ids"] == processor.video_token_id).sum(-1).tolist()


def test_grid_is_the_one_the_budget_implies_at_the_models_factor(backbone):
    _, processor = backbone
    # 64 x 128 = 8192 pixels > 2048: both sides halve, to 32 x 64 (multiples of 16).
    clip = fit_clip(textured(4, 64, 128), TINY)
    assert clip.frames.shape[1:3] == (32, 64)
    batch = encode_pairs(processor, [clip], ["red"])
    # grid: 4 frames / temporal patch 2, 32 / patch 8, 64 / patch 8.
    assert batch["video_grid_thw"].tolist() == [[2, 4, 8]]
    assert tokens_per_frame_pair(32, 64, 16) == 8
    assert video_tokens(processor, batch) == [2 * 8]


def test_official_budget_frames_reach_the_model_at_their_fit_size(backbone):
    _, processor = backbone
    raw = textured(4, 720, 1280)
    fit = fit_clip(raw, OFFICIAL)
    assert fit.frames.shape[1:3] == (256, 480)
    batch = encode_pairs(processor, [fit], ["red"])
    # Not resized again: 256 / 8 and 480 / 8 patches; the tiny processor's own rule would have
    # shrunk 720p to about one 96 x 96 frame.
    assert batch["video_grid_thw"].tolist() == [[2, 32, 60]]
    own = encode_pairs(processor, [raw], ["red"])
    t, h, w = own["video_grid_thw"][0].tolist()
    assert t == 2 and h * w * 8 * 8 <= 96 * 96 * 1.1


def test_without_a_budget_encoding_is_unchanged(backbone):
    _, processor = backbone
    clips = [textured(3, 72, 130, seed=1), textured(4, 96, 96, seed=2)]
    batch = encode_pairs(processor, clips, ["red", "a blue circle"])
    # What the scoring path passed before budgets existed: the processor's own resizing.
    frames, metadata = zip(*(video_inputs(c) for c in clips))
    video = processor.video_processor(videos=list(frames), video_metadata=list(metadata), do_sample_frames=False,
                                      input_data_format="channels_last", return_tensors="pt")
    torch.testing.assert_close(batch["pixel_values_videos"], video["pixel_values_videos"], rtol=0, atol=0)
    assert batch["video_grid_thw"].tolist() == video["video_grid_thw"].tolist()


def test_a_batch_mixing_fit_and_raw_clips_is_refused(backbone):
    _, processor = backbone
    fit = fit_clip(textured(2, 64, 128), TINY)
    with pytest.raises(ValueError, match="mixes clips"):
        encode_pairs(processor, [fit, textured(2, 64, 128, path="raw.mp4")], ["a", "b"])


def test_grouped_scoring_of_a_fit_clip_equals_per_pair_scoring(backbone):
    model, processor = backbone
    clip = fit_clip(textured(4, 360, 640, seed=3), OFFICIAL)
    queries = ["red", "a blue circle bounces"]
    batch, pixels, grid = encode_queries_for_video(processor, clip, queries)
    assert grid.tolist() == [[2, 32, 60]]
    per_pair = encode_pairs(processor, [clip, clip], queries)
    torch.testing.assert_close(pixels, per_pair["pixel_values_videos"][: pixels.shape[0]], rtol=0, atol=0)
    with torch.no_grad():
        expected = score_batch(model, per_pair)
    grouped = score_queries_for_video(model, processor, clip, queries)
    assert grouped == pytest.approx(expected.tolist(), abs=1e-4)
