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
from ..data.visual_budget import processor_video_kwargs
from .prompts import PromptPreset, get_preset
from .scoring import _model_answer_ids, answer_margin, pair_text, video_inputs


def encode_queries_for_video(processor, clip: Clip, queries: Sequence[str], *, prompt: str | PromptPreset = "paper"):
    """`encode_pairs(processor, [clip] * n, queries, prompt=prompt)` with the video preprocessed once.

    Returns (text inputs for the n pairs, the video's pixel values, its grid). The text inputs are
    token-for-token what `encode_pairs` builds (tested): the processor's own placeholder expansion
    of the video (frame stamps and vision tokens) is spliced into each prompt."""
    tps = getattr(processor.video_processor, "temporal_patch_size", 2)
    frames, metadata = video_inputs(clip, tps)
    video = processor.video_processor(videos=[frames], video_metadata=[metadata], do_sample_frames=False,
                                      input_data_format="channels_last", return_metadata=True, return_tensors="pt",
                                      **processor_video_kwargs(processor.video_processor, [clip]))
    placeholder = processor.replace_video_token(video, 0)
    texts = [pair_text(processor, q, prompt).replace(processor.video_token, placeholder, 1) for q in queries]
    enc = processor.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
             "mm_token_type_ids": torch.tensor(processor.create_mm_token_type_ids(enc["input_ids"])),
             "video_grid_thw": video["video_grid_thw"].repeat(len(queries), 1)}
    return batch, video["pixel_values_videos"], video["video_grid_thw"]


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


def _forward(model, batch: dict, encoded, ids) -> torch.Tensor:
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    n = batch["input_ids"].shape[0]
    out = model(**batch, mm_encoder_outputs={"video": _repeat(encoded, n)}, use_cache=False, logits_to_keep=1)
    return answer_margin(out.logits[:, -1, :], ids)


def _encode_video(model, pixels: torch.Tensor, grid: torch.Tensor):
    device = next(model.parameters()).device
    return _vlm(model).get_video_features(pixels.to(device), grid.to(device), return_dict=True)


def score_encoded_group(model, batch: dict, pixels: torch.Tensor, grid: torch.Tensor, *,
                        prompt: str | PromptPreset = "paper") -> torch.Tensor:
    """Scores [n] of the n pairs of one video encoded by `encode_queries_for_video` (with the same
    `prompt`), with one vision pass. Runs under the caller's grad mode."""
    return _forward(model, batch, _encode_video(model, pixels, grid), _model_answer_ids(model, get_preset(prompt)))


@torch.no_grad()
def score_queries_for_video(model, processor, clip: Clip, queries: Sequence[str], *, batch_size: int = 32,
                            prompt: str | PromptPreset = "paper") -> list[float]:
    """The score of (q, clip) under `prompt` for every q in `queries`: the video is preprocessed
    once and encoded once; queries go through the language model in chunks."""
    if not queries:
        return []
    preset = get_preset(prompt)
    ids = _model_answer_ids(model, preset)
    scores: list[float] = []
    encoded = None
    for start in range(0, len(queries), batch_size):
        batch, pixels, grid = encode_queries_for_video(processor, clip, list(queries[start : start + batch_size]),
                                                       prompt=preset)
        if encoded is None:  # the one vision pass of this video
            encoded = _encode_video(model, pixels, grid)
        scores += _forward(model, batch, encoded, ids).tolist()
    return scores
