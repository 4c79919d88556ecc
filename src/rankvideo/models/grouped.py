"""Scoring many queries against one video with a single vision pass.

In reranking, one video is a candidate of many queries. The vision tower is the expensive part of
a forward pass, so `score_queries_for_video` runs it once per video and hands its outputs
(`pooler_output` and the deepstack features of Qwen3-VL) to the language model for every query
through transformers' `mm_encoder_outputs` argument. The scores equal those of `score_batch` on
the same pairs (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.video import Clip
from .scoring import _model_inputs, _model_yes_no, encode_pairs


def _vlm(model):
    """The Qwen-VL model inside a PEFT or conditional-generation wrapper (has get_video_features)."""
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(m, "model", m)
    if not hasattr(inner, "get_video_features"):
        raise TypeError(f"{type(m).__name__} has no get_video_features: grouped scoring needs a Qwen-VL model")
    return inner


def _repeat(encoder_output, n: int):
    """The vision output of one video, as if the batch held n copies of it."""
    out = type(encoder_output)(**{k: v for k, v in encoder_output.items()})
    out.pooler_output = tuple(encoder_output.pooler_output[0] for _ in range(n))
    if getattr(encoder_output, "deepstack_features", None) is not None:
        out.deepstack_features = [tuple(layer[0] for _ in range(n)) for layer in encoder_output.deepstack_features]
    return out


@torch.no_grad()
def score_queries_for_video(model, processor, clip: Clip, queries: Sequence[str], *, batch_size: int = 32) -> list[float]:
    """s = logit(yes) - logit(no) for (q, clip) for every q in `queries`, one vision pass."""
    if not queries:
        return []
    yes_id, no_id = _model_yes_no(model)
    device = next(model.parameters()).device
    vlm = _vlm(model)
    scores: list[float] = []
    encoded = None
    for start in range(0, len(queries), batch_size):
        chunk = list(queries[start : start + batch_size])
        batch = _model_inputs(encode_pairs(processor, [clip] * len(chunk), chunk))
        batch = {k: v.to(device) for k, v in batch.items()}
        pixels = batch.pop("pixel_values_videos")
        grid = batch["video_grid_thw"]
        if encoded is None:
            per_video = pixels.shape[0] // len(chunk)  # the processor repeats the same patches per row
            encoded = vlm.get_video_features(pixels[:per_video], grid[:1], return_dict=True)
        out = model(**batch, mm_encoder_outputs={"video": _repeat(encoded, len(chunk))}, use_cache=False, logits_to_keep=1)
        last = out.logits[:, -1, :].float()
        scores += (last[:, yes_id] - last[:, no_id]).tolist()
    return scores
