"""Scoring grouped by video equals pair-by-pair scoring, with one video preprocessing and one
vision pass per video."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from rankvideo.data.video import Clip
from rankvideo.models.grouped import encode_queries_for_video, score_queries_for_video
from rankvideo.models.scoring import encode_pairs, score_batch
from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUERIES = ["flood in Lisbon with a red circle", "a blue square",
           "a parade in Lima where a green triangle appears before a red circle moving left to right"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model"
    build_tiny_qwen3_vl(path, corpus=QUERIES * 5)
    return load_backbone(path)


def _clip(seed, n=6):
    rng = np.random.default_rng(seed)
    return Clip(rng.integers(0, 255, (n, 96, 96, 3), dtype=np.uint8), np.arange(n) * 0.5, 8.0, f"clip{seed}")


def test_encoding_matches_encode_pairs_token_for_token(tiny):
    _, proc = tiny
    clip = _clip(0)
    ref = encode_pairs(proc, [clip] * 3, QUERIES)
    got, pixels, grid = encode_queries_for_video(proc, clip, QUERIES)
    for key in ("input_ids", "attention_mask", "mm_token_type_ids", "video_grid_thw"):
        assert torch.equal(torch.as_tensor(got[key]), torch.as_tensor(ref[key])), key
    per_video = ref["pixel_values_videos"].shape[0] // 3
    assert torch.equal(pixels, ref["pixel_values_videos"][:per_video])


def test_grouped_scores_equal_plain_scores(tiny, monkeypatch):
    model, proc = tiny
    clip = _clip(1, n=5)  # odd frame count: padded the same way on both paths
    with torch.no_grad():
        ref = score_batch(model, encode_pairs(proc, [clip] * 3, QUERIES)).tolist()
    calls = []
    from rankvideo.models import grouped

    real = grouped._vlm(model).get_video_features
    monkeypatch.setattr(grouped._vlm(model), "get_video_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = score_queries_for_video(model, proc, clip, QUERIES, batch_size=2)
    assert np.allclose(ref, got, atol=1e-5)
    assert len(calls) == 1  # one vision pass for 3 queries in 2 chunks
    assert score_queries_for_video(model, proc, clip, []) == []


def test_the_shared_prefix_is_read_once_and_query_first_prompts_score_whole(tiny, monkeypatch):
    """Under the paper's prompt (video first) the language model reads the system prompt and the
    video once per chunk, then only each query's own tokens; under a query-first prompt it reads
    every pair whole. Both give score_batch's scores."""
    model, proc = tiny
    clip = _clip(2, n=6)
    lm = model.model.language_model
    seen = []
    real = lm.forward
    def recording(*a, **k):
        seen.append(tuple(k["inputs_embeds"].shape[:2]))
        return real(*a, **k)

    monkeypatch.setattr(lm, "forward", recording)
    for prompt in ("paper", "official_inference"):
        with torch.no_grad():
            ref = score_batch(model, encode_pairs(proc, [clip] * 3, QUERIES, prompt=prompt), prompt=prompt).tolist()
        seen.clear()
        got = score_queries_for_video(model, proc, clip, QUERIES, prompt=prompt)
        assert np.allclose(ref, got, atol=1e-5), prompt
        full = encode_queries_for_video(proc, clip, QUERIES, prompt=prompt)[0]["input_ids"].shape[1]
        if prompt == "paper":
            (one, shared), (three, own) = seen
            assert one == 1 and three == 3 and shared > 100 and shared + own <= full
        else:
            assert seen == [(3, full)]
