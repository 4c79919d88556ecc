"""Scoring many queries against one video with a single vision pass.

In reranking, one video is a candidate of many queries. `score_queries_for_video` runs the vision
tower once per video and hands its outputs (`pooler_output` and the deepstack features of
Qwen3-VL) to the language model for every query through transformers' `mm_encoder_outputs`
argument. Without gradients, under a prompt that puts the video first, the language model also
reads the part of the prompt all queries share (system prompt and video) once, and each query's
own tokens attend to its cached keys and values. The scores equal those of `score_batch` on the
same pairs (tested).
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


def _common_prefix(rows: list[torch.Tensor]) -> int:
    """Length of the token prefix every row shares, leaving each row at least one token of its own."""
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for r in rows[1:]:
        diff = (r[:n] != first[:n]).nonzero()
        if len(diff):
            n = int(diff[0])
    return n


def _forward_shared_prefix(model, batch: dict, encoded, ids) -> torch.Tensor | None:
    """`_forward` for prompts that put the video first: the tokens every pair shares (the system
    prompt, the video and what follows it up to the query) go through the language model once, and
    each pair's own tokens then read that prefix's cached keys and values. The scores equal
    `_forward`'s up to float rounding (tested). None when the shared prefix does not hold every
    video token (the query comes first), so that the caller scores the pairs whole."""
    device = next(model.parameters()).device
    mask = batch["attention_mask"].bool()
    rows = [r[m] for r, m in zip(batch["input_ids"], mask)]
    types = batch["mm_token_type_ids"][0][mask[0]]
    n_shared = _common_prefix(rows)
    if n_shared < 1 or bool(types[n_shared:].any()):
        return None
    n = len(rows)
    prefix = rows[0][:n_shared][None].to(device)
    prefix_types = types[:n_shared][None].to(device)
    grid = batch["video_grid_thw"][:1].to(device)
    ones = torch.ones_like(prefix)
    positions, _ = _vlm(model).get_rope_index(prefix, mm_token_type_ids=prefix_types, video_grid_thw=grid,
                                              attention_mask=ones)
    out = model(input_ids=prefix, attention_mask=ones, mm_token_type_ids=prefix_types, video_grid_thw=grid,
                mm_encoder_outputs={"video": encoded}, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = out.cache
    cache.batch_repeat_interleave(n)
    own = [r[n_shared:] for r in rows]
    width = max(len(r) for r in own)
    suffix = torch.zeros(n, width, dtype=rows[0].dtype)
    suffix_mask = torch.zeros(n, width, dtype=batch["attention_mask"].dtype)
    for i, r in enumerate(own):
        suffix[i, : len(r)] = r
        suffix_mask[i, : len(r)] = 1
    # Text after the video continues from the prefix's largest position, on all three rope axes.
    start = int(positions.max()) + 1
    suffix_positions = (start + torch.arange(width)).view(1, 1, -1).expand(3, n, -1)
    out = model(input_ids=suffix.to(device), attention_mask=torch.cat([ones.expand(n, -1), suffix_mask.to(device)], 1),
                mm_token_type_ids=torch.zeros_like(suffix).to(device), position_ids=suffix_positions.to(device),
                cache=cache, use_cache=True)
    last = torch.tensor([len(r) - 1 for r in own], device=device)
    return answer_margin(out.logits[torch.arange(n, device=device), last, :], ids)


def _encode_video(model, pixels: torch.Tensor, grid: torch.Tensor):
    device = next(model.parameters()).device
    return _vlm(model).get_video_features(pixels.to(device), grid.to(device), return_dict=True)


def _score(model, batch: dict, encoded, ids, preset: PromptPreset, share_prefix: bool = True) -> torch.Tensor:
    """Without gradients, a Qwen3-VL under a video-first prompt reads the shared prefix once;
    otherwise (training, other models, query-first prompts) every pair goes through whole."""
    if (share_prefix and preset.video_first and not torch.is_grad_enabled()
            and type(_vlm(model)).__name__ == "Qwen3VLModel"):
        scores = _forward_shared_prefix(model, batch, encoded, ids)
        if scores is not None:
            return scores
    return _forward(model, batch, encoded, ids)


def score_encoded_group(model, batch: dict, pixels: torch.Tensor, grid: torch.Tensor, *,
                        prompt: str | PromptPreset = "paper") -> torch.Tensor:
    """Scores [n] of the n pairs of one video encoded by `encode_queries_for_video` (with the same
    `prompt`), with one vision pass. Runs under the caller's grad mode."""
    preset = get_preset(prompt)
    return _score(model, batch, _encode_video(model, pixels, grid), _model_answer_ids(model, preset), preset)


@torch.no_grad()
def score_queries_for_video(model, processor, clip: Clip, queries: Sequence[str], *, batch_size: int = 32,
                            prompt: str | PromptPreset = "paper", share_prefix: bool = True) -> list[float]:
    """The score of (q, clip) under `prompt` for every q in `queries`: the video is preprocessed
    once and encoded once; queries go through the language model in chunks, each chunk reading
    the prompt's shared prefix once where it can (`share_prefix=False`: every pair whole)."""
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
        scores += _score(model, batch, encoded, ids, preset, share_prefix).tolist()
    return scores
