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
from .prompts import ANSWER_PREFIX, build_messages
from .scoring import _model_yes_no, _prompt, video_inputs


def encode_queries_for_video(processor, clip: Clip, queries: Sequence[str]):
    """`encode_pairs(processor, [clip] * n, queries)` with the video preprocessed once.

    Returns (text inputs for the n pairs, the video's pixel values, its grid). The text inputs are
    token-for-token what `encode_pairs` builds (tested): the processor's own placeholder expansion
    of the video (frame stamps and vision tokens) is spliced into each prompt."""
    tps = getattr(processor.video_processor, "temporal_patch_size", 2)
    frames, metadata = video_inputs(clip, tps)
    video = processor.video_processor(videos=[frames], video_metadata=[metadata], do_sample_frames=False,
                                      input_data_format="channels_last", return_metadata=True, return_tensors="pt")
    placeholder = processor.replace_video_token(video, 0)
    texts = [(_prompt(processor, build_messages(q)) + ANSWER_PREFIX).replace(processor.video_token, placeholder, 1)
             for q in queries]
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


def _forward(model, batch: dict, encoded, yes_no: tuple[int, int]) -> torch.Tensor:
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    n = batch["input_ids"].shape[0]
    out = model(**batch, mm_encoder_outputs={"video": _repeat(encoded, n)}, use_cache=False, logits_to_keep=1)
    last = out.logits[:, -1, :].float()
    return last[:, yes_no[0]] - last[:, yes_no[1]]


def _encode_video(model, pixels: torch.Tensor, grid: torch.Tensor):
    device = next(model.parameters()).device
    return _vlm(model).get_video_features(pixels.to(device), grid.to(device), return_dict=True)


def score_encoded_group(model, batch: dict, pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Scores [n] of the n pairs of one video encoded by `encode_queries_for_video`, with one
    vision pass. Runs under the caller's grad mode."""
    return _forward(model, batch, _encode_video(model, pixels, grid), _model_yes_no(model))


@torch.no_grad()
def score_queries_for_video(model, processor, clip: Clip, queries: Sequence[str], *, batch_size: int = 32) -> list[float]:
    """s = logit(yes) - logit(no) for (q, clip) for every q in `queries`: the video is
    preprocessed once and encoded once; queries go through the language model in chunks."""
    if not queries:
        return []
    yes_no = _model_yes_no(model)
    scores: list[float] = []
    encoded = None
    for start in range(0, len(queries), batch_size):
        batch, pixels, grid = encode_queries_for_video(processor, clip, list(queries[start : start + batch_size]))
        if encoded is None:  # the one vision pass of this video
            encoded = _encode_video(model, pixels, grid)
        scores += _forward(model, batch, encoded, yes_no).tolist()
    return scores
