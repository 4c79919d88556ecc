"""The visual-token budget (rankvideo.data.visual_budget): frame sizes and token counts derived by
hand from the rule, frames left alone without a budget, and the config and processor seams.

Hand derivations use the official inference's budget: min = max = 128 * 32 * 32 = 131072 pixels
per frame, total = 32 * 131072 for the clip, factor 32. For 32 frames the clip's share per frame
pair is 4194304 / 32 * 2 = 262144, so the per-frame limit is max_pixels, 131072.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from omegaconf import OmegaConf

from rankvideo.data.clips import ClipStore, clip_options, clip_settings
from rankvideo.data.video import Clip, read_clip, write_video
from rankvideo.data.visual_budget import (
    VisualBudget,
    budget_from_config,
    fit_clip,
    fit_frames,
    fitted_size,
    frame_pixel_limit,
    processor_video_kwargs,
    tokens_per_frame_pair,
)

OFFICIAL = VisualBudget(min_pixels=128 * 32 * 32, max_pixels=128 * 32 * 32, total_pixels=32 * 128 * 32 * 32, factor=32)
# The same budget in tokens at Qwen2.5-VL's factor (patch 14 x merge 2).
OFFICIAL_28 = VisualBudget(min_pixels=128 * 28 * 28, max_pixels=128 * 28 * 28, total_pixels=32 * 128 * 28 * 28, factor=28)
# Only a clip budget (qwen-vl-utils' per-frame defaults: 4 to 768 tokens): the share per frame decides.
SHARED = VisualBudget(min_pixels=4 * 32 * 32, max_pixels=768 * 32 * 32, total_pixels=32 * 128 * 32 * 32, factor=32)


def clip_of(frames: np.ndarray, fps: float = 2.0, path: str = "synthetic") -> Clip:
    return Clip(frames=frames, timestamps=np.arange(len(frames)) / fps, native_fps=fps, path=path)


@pytest.mark.parametrize("height, width, size, tokens", [
    # 720 / 32 = 22.5 rounds (half to even) to 22: 704 x 1280 = 901120 > 131072, so both sides
    # shrink by sqrt(921600 / 131072) = 2.652: 271.5 -> 256 and 482.7 -> 480 (down to multiples of 32).
    (720, 1280, (256, 480), 120),
    # 480 x 864 after rounding; shrink by sqrt(409920 / 131072) = 1.768: 271.4 -> 256, 482.9 -> 480.
    (480, 854, (256, 480), 120),
    # 352 x 640 after rounding; shrink by sqrt(230400 / 131072) = 1.326: 271.5 -> 256, 482.7 -> 480.
    (360, 640, (256, 480), 120),
    # 4:3: shrink by sqrt(307200 / 131072) = 1.531: 313.5 -> 288, 418.1 -> 416.
    (480, 640, (288, 416), 117),
    # Too small: 9216 < 131072, both sides grow by sqrt(131072 / 9216) = 3.771: 362.0 -> 384 (up).
    (96, 96, (384, 384), 144),
])
def test_official_budget_sizes_and_tokens(height, width, size, tokens):
    assert fitted_size(height, width, 32, OFFICIAL) == size
    assert tokens_per_frame_pair(*size, OFFICIAL.factor) == tokens


def test_official_budget_gives_at_most_128_tokens_per_pair_for_common_video_sizes():
    # Frames larger than the budget only (smaller ones are scaled up, rounding up: 96 x 96 above).
    for height, width in [(720, 1280), (480, 854), (360, 640), (1080, 1920), (2160, 3840)]:
        for frames in (4, 7, 20, 32):
            h, w = fitted_size(height, width, frames, OFFICIAL)
            assert h % 32 == 0 and w % 32 == 0
            assert tokens_per_frame_pair(h, w, 32) <= 128, (height, width, frames)


def test_qwen2_5_factor_28_budget():
    # limit 100352; 364 x 644 after rounding, shrink by sqrt(230400 / 100352) = 1.515:
    # 237.6 -> 224 and 422.4 -> 420 (multiples of 28), 8 x 15 tokens.
    assert fitted_size(360, 640, 32, OFFICIAL_28) == (224, 420)
    assert tokens_per_frame_pair(224, 420, 28) == 120
    assert fitted_size(720, 1280, 32, OFFICIAL_28) == (224, 420)


def test_the_clip_budget_is_shared_per_frame_pair():
    # 8 frames: share 4194304 / 8 * 2 = 1048576, capped at 768 tokens = 786432; shrink 720p by
    # sqrt(921600 / 786432) = 1.0825: 665.1 -> 640, 1182.4 -> 1152.
    assert frame_pixel_limit(SHARED, 8) == 786432
    assert fitted_size(720, 1280, 8, SHARED) == (640, 1152)
    assert tokens_per_frame_pair(640, 1152, 32) == 720
    # 32 frames: share 262144; shrink by 1.875: 384 -> 384, 682.7 -> 672.
    assert frame_pixel_limit(SHARED, 32) == 262144
    assert fitted_size(720, 1280, 32, SHARED) == (384, 672)
    # 31 frames are padded to 32 by the processor, and counted so.
    assert fitted_size(720, 1280, 31, SHARED) == (384, 672)
    # 64 frames: share 131072.
    assert fitted_size(720, 1280, 64, SHARED) == (256, 480)
    # Never below 5 % above min_pixels: 4096 frames would get a share of 2048, the floor is 4300.
    assert frame_pixel_limit(SHARED, 4096) == 4300


def test_fit_frames_resizes_once_and_keeps_content():
    frames = np.zeros((3, 720, 1280, 3), np.uint8)
    frames[:, :, :640] = (200, 30, 10)  # left half one colour, right half black
    out = fit_frames(frames, OFFICIAL)
    assert out.shape == (3, 256, 480, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, :200], np.broadcast_to(np.array([200, 30, 10], np.uint8), (3, 256, 200, 3)))
    assert (out[:, :, 280:] == 0).all()
    # A size the rule keeps is returned as is: 256 x 512 = 131072 pixels exactly.
    fitted = np.zeros((4, 256, 512, 3), np.uint8)
    assert fit_frames(fitted, OFFICIAL) is fitted


def test_the_rule_applied_twice_changes_the_size_so_the_processor_must_not_resize_again():
    # 720p fits to 256 x 480 = 122880 pixels, below min_pixels; a second pass would scale that up
    # by sqrt(131072 / 122880) = 1.033: 264.4 -> 288 and 495.8 -> 512 (up), 144 tokens, not 120.
    first = fitted_size(720, 1280, 32, OFFICIAL)
    assert first == (256, 480)
    assert fitted_size(*first, 32, OFFICIAL) == (288, 512)


def test_no_budget_leaves_frames_and_clips_untouched():
    frames = np.random.default_rng(0).integers(0, 256, (5, 72, 130, 3), dtype=np.uint8)
    assert fit_frames(frames, None) is frames
    clip = clip_of(frames)
    assert fit_clip(clip, None) is clip
    assert processor_video_kwargs(object(), [clip, clip]) == {}


def test_fit_clip_records_the_budget_and_refuses_a_second_budget():
    clip = fit_clip(clip_of(np.zeros((4, 360, 640, 3), np.uint8)), OFFICIAL)
    assert clip.visual_budget == OFFICIAL and clip.frames.shape == (4, 256, 480, 3)
    np.testing.assert_array_equal(clip.timestamps, [0.0, 0.5, 1.0, 1.5])
    assert fit_clip(clip, OFFICIAL) is clip
    with pytest.raises(ValueError, match="already fit"):
        fit_clip(clip, SHARED)
    with pytest.raises(ValueError, match="not multiples of 32"):
        Clip(frames=np.zeros((2, 100, 64, 3), np.uint8), timestamps=np.arange(2.0), native_fps=1.0, path="p",
             visual_budget=OFFICIAL)


class _VideoProcessor:
    def __init__(self, patch_size: int, merge_size: int = 2):
        self.patch_size, self.merge_size = patch_size, merge_size


def test_processor_kwargs_say_do_not_resize_and_catch_mistakes():
    fit = fit_clip(clip_of(np.zeros((2, 360, 640, 3), np.uint8), path="a.mp4"), OFFICIAL)
    raw = clip_of(np.zeros((2, 360, 640, 3), np.uint8), path="b.mp4")
    assert processor_video_kwargs(_VideoProcessor(16), [fit, fit]) == {"do_resize": False}
    assert processor_video_kwargs(_VideoProcessor(8), [fit]) == {"do_resize": False}  # 32 is a multiple of 16
    with pytest.raises(ValueError, match=r"mixes clips.*b\.mp4"):
        processor_video_kwargs(_VideoProcessor(16), [fit, raw])
    with pytest.raises(ValueError, match=r"a\.mp4.*multiples of 28.*factor to 28"):
        processor_video_kwargs(_VideoProcessor(14), [fit])


def test_budget_from_config_and_its_errors():
    assert budget_from_config(None) is None
    node = OmegaConf.create(dataclasses.asdict(OFFICIAL))
    assert budget_from_config(node) == OFFICIAL
    with pytest.raises(ValueError, match=r"model.visual_budget needs exactly.*missing \['factor'\]"):
        budget_from_config({"min_pixels": 1, "max_pixels": 2, "total_pixels": 3})
    with pytest.raises(ValueError, match=r"model.visual_budget: VisualBudget.max_pixels \(10\) must be >= min_pixels"):
        budget_from_config({"min_pixels": 20, "max_pixels": 10, "total_pixels": 30, "factor": 2})
    with pytest.raises(ValueError, match="total_pixels must be an integer >= 1, got 1.5"):
        VisualBudget(min_pixels=1, max_pixels=1, total_pixels=1.5, factor=1)
    with pytest.raises(ValueError, match="aspect ratio above 200"):
        fitted_size(10, 4000, 4, OFFICIAL)
    with pytest.raises(ValueError, match="not multiples of factor 32"):
        tokens_per_frame_pair(250, 480, 32)


def test_clip_options_from_model_config():
    assert clip_options(OmegaConf.create({"name": "tiny"})) == {"sampling": "grid", "budget": None}
    opts = clip_options(OmegaConf.create({"frame_sampling": "official", "visual_budget": dataclasses.asdict(OFFICIAL)}))
    assert opts == {"sampling": "official", "budget": OFFICIAL}
    with pytest.raises(ValueError, match="model.frame_sampling must be one of"):
        clip_options(OmegaConf.create({"frame_sampling": "uniform"}))
    # The rerank fingerprint only changes when an option is set.
    assert clip_settings() == {} and clip_settings("grid", None) == {}
    assert clip_settings(**opts) == {"sampling": "official", "visual_budget": dataclasses.asdict(OFFICIAL)}


class _Doc:
    def __init__(self, doc_id: str):
        self.doc_id = doc_id


class _Bench:
    """What ClipStore reads of a Benchmark: the corpus and each document's video path."""

    def __init__(self, paths: dict):
        self.paths = paths

    def corpus(self):
        return [_Doc(d) for d in self.paths]

    def video_path(self, doc):
        return self.paths[doc.doc_id]


def test_clip_store_fits_once_and_is_unchanged_without_options(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (10, 360, 640, 3), dtype=np.uint8)
    path = tmp_path / "v.mp4"
    write_video(path, frames, fps=4)
    bench = _Bench({"v": path})
    plain = ClipStore(bench, fps=2.0, max_frames=32)["v"]
    reference = read_clip(path, fps=2.0, max_frames=32)
    np.testing.assert_array_equal(plain.frames, reference.frames)
    np.testing.assert_array_equal(plain.timestamps, reference.timestamps)
    assert plain.visual_budget is None

    store = ClipStore(bench, fps=2.0, max_frames=32, sampling="official", budget=OFFICIAL)
    fit = store["v"]
    assert store["v"] is fit  # decoded and fit once
    assert fit.visual_budget == OFFICIAL and fit.frames.shape[1:3] == (256, 480)
    # 10 frames at 4 fps: 2.5 s * 2 fps = 5 frames, at least 4, rounded down to an even 4, spread over 0..9.
    np.testing.assert_allclose(fit.timestamps, np.array([0, 3, 6, 9]) / 4)
    with pytest.raises(ValueError, match="sampling must be one of"):
        ClipStore(bench, fps=2.0, max_frames=32, sampling="uniform")


def test_model_configs_choose_sampling_and_budget():
    from conftest import compose_cfg
    from rankvideo.utils.validate import ConfigError, validate_config

    official_28 = dataclasses.asdict(OFFICIAL_28)
    expected = {
        "tiny_qwen3_vl": ("grid", None),
        "tiny_qwen3_vl_scratch": ("grid", None),
        "qwen3_vl_8b": ("grid", OFFICIAL),
        "qwen2_5_vl_7b": ("grid", VisualBudget(**official_28)),
        "rankvideo_official": ("official", OFFICIAL),
    }
    for name, (sampling, budget) in expected.items():
        cfg = compose_cfg([f"model={name}"])
        validate_config(cfg)
        assert clip_options(cfg.model) == {"sampling": sampling, "budget": budget}, name
    # The default composition does not carry the keys at all (the shipped runs' params are unchanged).
    assert "visual_budget" not in compose_cfg([]).model and "frame_sampling" not in compose_cfg([]).model
    with pytest.raises(ConfigError, match="model.visual_budget: VisualBudget.factor must be an integer >= 1, got 0"):
        validate_config(compose_cfg(["model=qwen3_vl_8b", "model.visual_budget.factor=0"]))
    with pytest.raises(ConfigError, match="model.frame_sampling must be one of"):
        validate_config(compose_cfg(["model=rankvideo_official", "model.frame_sampling=uniform"]))
