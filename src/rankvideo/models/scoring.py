"""Encoding (query, video) pairs for the reranker and reading its score.

The score of a pair is s(q, v) = logit("yes") - logit("no") at the last
position of the prompt; under the default ``paper`` preset the prompt ends with
``<answer>`` (../shared/paper-notes.md, "Model and score"). Nothing is
generated. Other presets (:mod:`rankvideo.models.prompts`) change the text, the
read position and the yes/no ids; :func:`score_pairs` scores under any of them.

Frames come from :func:`rankvideo.data.video.read_clip`, already sampled; the
processor must not sample them again, and it is told their real timestamps
through ``VideoMetadata`` so the ``<t seconds>`` stamps it writes between
frame pairs are the clip's own (../shared/stack.md, trap 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rankvideo.data.video import Clip
from rankvideo.data.visual_budget import processor_video_kwargs
from rankvideo.models.prompts import (
    ANSWER_PREFIX,
    THINK_CLOSE,
    THINK_OPEN,
    PromptPreset,
    build_caption_messages,
    get_preset,
)

__all__ = [
    "IGNORE_INDEX",
    "answer_margin",
    "answer_position",
    "answer_token_ids",
    "answer_target",
    "caption_target",
    "encode_caption_examples",
    "encode_conversations",
    "encode_pairs",
    "encode_target_examples",
    "pair_text",
    "score_batch",
    "score_pairs",
    "video_inputs",
    "yes_no_token_ids",
]

IGNORE_INDEX = -100  # label value torch's cross entropy skips

# Clock used when a clip's native frame rate is unknown (Clip.native_fps 0.0):
# frame "indices" are then milliseconds, so the processor's idx / fps gives
# back the decoded timestamps anyway.
_FALLBACK_CLOCK_HZ = 1000.0


def _tokenizer_of(processor_or_tokenizer):
    return getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)


def yes_no_token_ids(tokenizer) -> tuple[int, int]:
    """Ids of "yes" and "no" as the token right after :data:`ANSWER_PREFIX`.

    The score compares exactly two logits, so each answer word must be one
    token where it is read: the encoding of ``ANSWER_PREFIX + word`` must be
    the encoding of the prefix followed by a single token. A tokenizer that
    splits a word, or that merges it with the end of the prefix, would make
    the score read the logit of a word fragment; that is refused loudly.
    Accepts a tokenizer or a processor holding one.
    """
    tok = _tokenizer_of(tokenizer)
    name = f"{type(tok).__name__}({getattr(tok, 'name_or_path', '') or 'unnamed'!r})"
    prefix = tok.encode(ANSWER_PREFIX, add_special_tokens=False)
    out = []
    for word in ("yes", "no"):
        ids = tok.encode(ANSWER_PREFIX + word, add_special_tokens=False)
        if ids[: len(prefix)] != prefix or len(ids) != len(prefix) + 1:
            pieces = tok.convert_ids_to_tokens(ids)
            raise ValueError(
                f"tokenizer {name} does not encode {word!r} as one token after {ANSWER_PREFIX!r}: "
                f"{ANSWER_PREFIX + word!r} -> {pieces}; the yes/no score needs a single token per answer"
            )
        out.append(ids[-1])
    if out[0] == out[1]:
        raise ValueError(f"tokenizer {name} maps 'yes' and 'no' to the same token id {out[0]}")
    return out[0], out[1]


def answer_token_ids(tokenizer, prompt: "str | PromptPreset" = "paper") -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The vocabulary ids counted as "yes" and as "no" under the preset ``prompt``
    (``PromptPreset.answer_ids``): one each for ``after_prefix`` (:func:`yes_no_token_ids`) and
    ``first_token``; every matching id of the base vocabulary for ``variants`` (either tuple may
    then be empty). Looked up once per tokenizer and preset. Accepts a tokenizer or a processor."""
    preset = get_preset(prompt)
    tok = _tokenizer_of(tokenizer)
    cache = tok.__dict__.setdefault("_rankvideo_answer_ids", {})
    if preset.name in cache:
        return cache[preset.name]
    if preset.answer_ids == "after_prefix":
        if preset.answer_prefix == ANSWER_PREFIX:
            yes, no = yes_no_token_ids(tok)
        else:
            yes, no = _ids_after(tok, preset.answer_prefix)
        ids = ((yes,), (no,))
    elif preset.answer_ids == "first_token":
        ids = tuple((tok.encode(word, add_special_tokens=False)[0],) for word in ("yes", "no"))
    else:
        words = tok.batch_decode([[i] for i in range(tok.vocab_size)])
        norm = [w.strip().lower() for w in words]
        ids = tuple(tuple(i for i, w in enumerate(norm) if w == word) for word in ("yes", "no"))
    cache[preset.name] = ids
    return ids


def _ids_after(tok, prefix: str) -> tuple[int, int]:
    start = tok.encode(prefix, add_special_tokens=False)
    out = []
    for word in ("yes", "no"):
        ids = tok.encode(prefix + word, add_special_tokens=False)
        if ids[: len(start)] != start or len(ids) != len(start) + 1:
            raise ValueError(f"the tokenizer does not encode {word!r} as one token after {prefix!r}: "
                             f"{tok.convert_ids_to_tokens(ids)}")
        out.append(ids[-1])
    return out[0], out[1]


def answer_margin(logits: torch.Tensor, ids: tuple[tuple[int, ...], tuple[int, ...]]) -> torch.Tensor:
    """Score [B] from the logits [B, V] at the read position: logit(yes) - logit(no) for one id
    each, logsumexp over each set otherwise, 0.0 where either set is empty."""
    yes, no = ids
    logits = logits.float()
    if not yes or not no:
        return logits.new_zeros(logits.shape[0])
    if len(yes) == 1 and len(no) == 1:
        return logits[:, yes[0]] - logits[:, no[0]]
    return torch.logsumexp(logits[:, list(yes)], -1) - torch.logsumexp(logits[:, list(no)], -1)


def video_inputs(clip: Clip, temporal_patch_size: int = 2):
    """Frames and ``VideoMetadata`` of ``clip`` as the Qwen3-VL processor wants them.

    - Timestamps are re-zeroed at the first frame: the processor stamps a
      video file's frames from its first decoded frame, and clips cut from a
      longer stream keep their offset in :class:`Clip`.
    - ``frames_indices`` are the frames' positions on the native frame clock
      (``round(t * native_fps)``), so the processor's ``idx / fps`` is the
      real timestamp (to within half a native frame for variable-rate files,
      far below the 0.1 s it prints). Unknown native rate: a 1 kHz clock.
    - A frame count that is not a multiple of ``temporal_patch_size`` (odd,
      for Qwen's 2) is padded by repeating the last frame and its index, the
      same padding the processor applies internally; doing it here also makes
      a 1-frame clip valid (the resizer refuses fewer frames than one
      temporal patch) and keeps frames and stamps in step.
    """
    from transformers.video_utils import VideoMetadata

    frames = np.asarray(clip.frames)
    ts = np.asarray(clip.timestamps, dtype=np.float64)
    ts = ts - ts[0]
    fps = float(clip.native_fps) if clip.native_fps and clip.native_fps > 0 else _FALLBACK_CLOCK_HZ
    indices = np.rint(ts * fps).astype(np.int64)
    if pad := -len(frames) % temporal_patch_size:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        indices = np.concatenate([indices, np.repeat(indices[-1:], pad)])
    _, height, width, _ = frames.shape
    metadata = VideoMetadata(
        total_num_frames=int(indices[-1]) + 1,
        fps=fps,
        width=int(width),
        height=int(height),
        duration=float(ts[-1]),
        frames_indices=indices.tolist(),
    )
    return np.ascontiguousarray(frames), metadata


def _process(processor, texts: list[str], clips: Sequence[Clip]):
    tps = getattr(processor.video_processor, "temporal_patch_size", 2)
    frames, metadata = zip(*(video_inputs(c, tps) for c in clips)) if clips else ((), ())
    return processor(
        text=texts,
        videos=list(frames),
        video_metadata=list(metadata),
        # The frames are already sampled (read_clip); resampling would drop
        # some and desynchronise the stamps.
        do_sample_frames=False,
        input_data_format="channels_last",
        padding=True,
        # Explicit: hub tokenizers may default to right padding, which would
        # put pad tokens where the score is read.
        padding_side="left",
        return_tensors="pt",
        # Clips fit to a visual budget are not resized again (do_resize=False).
        **processor_video_kwargs(processor.video_processor, clips),
    )


def _check_pairs(clips, texts, what: str) -> None:
    if len(clips) != len(texts):
        raise ValueError(f"got {len(clips)} clips but {len(texts)} {what}; pass one per clip")
    if not clips:
        raise ValueError("nothing to encode: clips is empty")
    for c in clips:
        if not isinstance(c, Clip):
            raise TypeError(f"clips must be rankvideo.data.video.Clip objects, got {type(c).__name__}")


def _prompt(processor, messages: list[dict]) -> str:
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def pair_text(processor, query: str, prompt: "str | PromptPreset" = "paper") -> str:
    """The full text of one (query, video) pair under ``prompt``: the chat-templated messages,
    the assistant generation prompt and the preset's answer prefix; the score is read at its
    last token."""
    preset = get_preset(prompt)
    return _prompt(processor, preset.messages(query)) + preset.answer_prefix


def encode_pairs(processor, clips: Sequence[Clip], queries: Sequence[str], *, prompt: "str | PromptPreset" = "paper"):
    """Processor inputs for scoring ``(queries[i], clips[i])`` under the preset ``prompt``.

    Each text is :func:`pair_text`: with left padding the last position of every row is where
    the score is read (under ``paper``, the ``<answer>`` token, whose logits predict the answer
    word). Returns the processor's BatchFeature (input_ids, attention_mask, mm_token_type_ids,
    pixel_values_videos, video_grid_thw).
    """
    clips, queries = list(clips), list(queries)
    _check_pairs(clips, queries, "queries")
    texts = [pair_text(processor, q, prompt) for q in queries]
    return _process(processor, texts, clips)


def _model_inputs(batch) -> dict:
    """Every tensor the processor produced, except training-only labels.

    Passed wholesale because transformers 5's Qwen3-VL needs
    ``mm_token_type_ids`` (to build the 3-D M-RoPE positions of video
    tokens) besides the usual inputs; dropping it is an error there, and
    dropping anything else would silently change the model's view.
    """
    inputs = {k: v for k, v in batch.items() if k != "labels" and isinstance(v, torch.Tensor)}
    if "input_ids" not in inputs or "attention_mask" not in inputs:
        raise ValueError("batch needs input_ids and attention_mask (use encode_pairs)")
    if "pixel_values_videos" in inputs and "mm_token_type_ids" not in inputs:
        raise ValueError("batch has videos but no mm_token_type_ids; pass the processor's output unchanged")
    return inputs


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def answer_position(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-pad token of each row ([B] long).

    With left padding this is ``seq_len - 1`` for every row; the score is
    read there. Rows without any real token give -1.
    """
    if input_ids.shape != attention_mask.shape:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} differ")
    seq = attention_mask.shape[-1]
    mask = attention_mask.bool()
    # Position of the last True: flip, argmax finds the first True from the end.
    last = seq - 1 - mask.flip(-1).int().argmax(-1)
    return torch.where(mask.any(-1), last, torch.full_like(last, -1))


def score_batch(model, batch, *, yes_no_ids=None, prompt: "str | PromptPreset" = "paper") -> torch.Tensor:
    """The score at the last position, float32 [B]: logit(yes) - logit(no) (see
    :func:`answer_margin` for presets that count several ids).

    ``batch`` is :func:`encode_pairs` output. Runs a plain forward (no generation, no KV cache)
    under whatever grad mode the caller set, so the same call trains and scores. Only the last
    position's logits are computed (``logits_to_keep=1``). ``yes_no_ids`` (two ids, or two tuples
    of ids) default to :func:`answer_token_ids` of ``prompt`` for the tokenizer saved with the
    model; pass them when the model has none attached.
    """
    inputs = _model_inputs(batch)
    mask = inputs["attention_mask"]
    if not bool(mask[:, -1].all()):
        raise ValueError(
            "the last position of some rows is padding: the batch is right-padded, so the score would be "
            "read at a pad token; encode with left padding (encode_pairs does)"
        )
    if yes_no_ids is None:
        ids = _model_answer_ids(model, get_preset(prompt))
    else:
        ids = tuple(tuple(x) if isinstance(x, (tuple, list)) else (int(x),) for x in yes_no_ids)
    device = _device_of(model)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    out = model(**inputs, use_cache=False, logits_to_keep=1)
    return answer_margin(out.logits[:, -1, :], ids)


def score_pairs(model, processor, clips: Sequence[Clip], queries: Sequence[str], *,
                prompt: "str | PromptPreset" = "paper") -> torch.Tensor:
    """Scores (float32 [n], one per pair) of ``(queries[i], clips[i])`` under the preset
    ``prompt``, ``clips`` from :func:`rankvideo.data.video.read_clip`. One batch, left-padded;
    runs under the caller's grad mode."""
    preset = get_preset(prompt)
    batch = encode_pairs(processor, clips, queries, prompt=preset)
    return score_batch(model, batch, yes_no_ids=answer_token_ids(processor, preset), prompt=preset)


def _model_tokenizer(model):
    from transformers import AutoTokenizer

    import os

    path = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
    if not path or not os.path.isdir(path):
        # Never a hub lookup from inside a scoring loop.
        raise ValueError(
            "the model carries no yes/no token ids and was not loaded from a local folder; "
            "pass yes_no_ids=answer_token_ids(tokenizer, prompt)"
        )
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def _model_yes_no(model) -> tuple[int, int]:
    ids = getattr(model, "_rankvideo_yes_no_ids", None)
    if ids is None:
        ids = yes_no_token_ids(_model_tokenizer(model))
        # Cached on the module: looked up once per model, not per batch.
        model._rankvideo_yes_no_ids = ids
    return ids


def _model_answer_ids(model, preset: PromptPreset) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The answer ids of ``preset`` for ``model`` (its attached ids under ``paper``, else from the
    tokenizer saved with it), cached on the model."""
    if preset.name == "paper":
        yes, no = _model_yes_no(model)
        return (yes,), (no,)
    cache = model.__dict__.setdefault("_rankvideo_answer_ids", {})
    if preset.name not in cache:
        cache[preset.name] = answer_token_ids(_model_tokenizer(model), preset)
    return cache[preset.name]


def caption_target(caption: str) -> str:
    """The stage-1 assistant target: ``<think>{caption}</think><|im_end|>``."""
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"caption must be a non-empty string, got {caption!r}")
    return f"{THINK_OPEN}{caption.strip()}{THINK_CLOSE}"


def answer_target(answer: str) -> str:
    """The assistant target of a question: ``<answer>{answer}</answer>``; for a yes/no question
    the answer word comes right after ``<answer>``, where the reranker reads its score."""
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"answer must be a non-empty string, got {answer!r}")
    return f"{ANSWER_PREFIX}{answer.strip()}</answer>"


def encode_target_examples(processor, clips: Sequence[Clip], messages: Sequence[list[dict]], targets: Sequence[str]):
    """Supervised inputs with ``labels``: row i is ``messages[i]`` chat-templated with the
    assistant generation prompt, then ``targets[i]`` and the tokenizer's end-of-turn token, about
    ``clips[i]``. Every target must start with an added markup token (``<think>``, ``<answer>``),
    so that it tokenizes the same alone as after the prompt.

    Loss tokens (labels != -100): exactly the target's tokens and the closing end-of-turn token;
    everything else (padding, system and user turns, video and stamp tokens, the assistant
    header) is -100. Labels are aligned with input_ids; the model's loss shifts them itself.
    """
    clips, messages, targets = list(clips), list(messages), list(targets)
    _check_pairs(clips, targets, "targets")
    if len(messages) != len(targets):
        raise ValueError(f"got {len(messages)} prompts but {len(targets)} targets")
    tok = processor.tokenizer
    eot = tok.eos_token
    if not eot:
        raise ValueError(f"tokenizer {type(tok).__name__} has no eos (end-of-turn) token")
    targets = [t + eot for t in targets]
    batch = _process(processor, [_prompt(processor, m) + t for m, t in zip(messages, targets)], clips)

    input_ids = batch["input_ids"]
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    added = set(tok.get_added_vocab().values())
    for i, target in enumerate(targets):
        n = len(tok.encode(target, add_special_tokens=False))
        row = input_ids[i, -n:]
        # The target starts with an added token, so it tokenizes the same alone as after the
        # prompt; verify rather than trust it.
        if row[0].item() not in added or row[-1].item() != tok.eos_token_id or not bool(batch["attention_mask"][i, -n:].all()):
            raise RuntimeError(
                f"row {i}: the target is not the last {n} tokens of the encoded text; it must start with an "
                "added markup token, and the batch must be left-padded"
            )
        labels[i, -n:] = row
    batch["labels"] = labels
    return batch


def encode_conversations(processor, clips: Sequence[Clip], conversations: Sequence[list[dict]]):
    """Supervised inputs of multi-turn conversations about one clip each, with ``labels`` on every
    assistant turn. Each conversation is chat messages (system, user, assistant, user, ...,
    assistant) whose first user turn holds the video; assistant contents are plain strings.

    Loss tokens: the content of every assistant turn and its closing end-of-turn token; the
    ``<|im_start|>assistant\\n`` headers, system and user turns, video tokens and padding are -100.
    A one-turn conversation gives exactly what :func:`encode_target_examples` gives.
    """
    clips, conversations = list(clips), list(conversations)
    _check_pairs(clips, conversations, "conversations")
    tok = processor.tokenizer
    eot = tok.eos_token
    texts = []
    for i, conv in enumerate(conversations):
        if not conv or conv[-1]["role"] != "assistant":
            raise ValueError(f"conversation {i} must end with an assistant turn")
        text = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=False)
        # The template closes every turn with eot + newline; drop the last newline so that, left
        # padded, each row ends with the last answer's end-of-turn token.
        texts.append(text[:-1] if text.endswith(eot + "\n") else text)
    batch = _process(processor, texts, clips)
    input_ids = batch["input_ids"]
    header = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, conv in enumerate(conversations):
        row = input_ids[i].tolist()
        turns = 0
        j = 0
        while j <= len(row) - len(header):
            if row[j : j + len(header)] == header:
                start = j + len(header)
                end = start
                while end < len(row) and row[end] != tok.eos_token_id:
                    end += 1
                labels[i, start : end + 1] = input_ids[i, start : end + 1]
                turns += 1
                j = end + 1
            else:
                j += 1
        expected = sum(m["role"] == "assistant" for m in conv)
        if turns != expected:
            raise RuntimeError(f"conversation {i}: found {turns} assistant turns in the encoded text, expected {expected}")
    batch["labels"] = labels
    return batch


def encode_caption_examples(processor, clips: Sequence[Clip], captions: Sequence[str]):
    """Stage-1 (perception SFT) inputs with ``labels``.

    Text per row: the caption prompt (:func:`build_caption_messages`), the
    assistant generation prompt, then the target ``<think>{caption}</think>``
    and the tokenizer's end-of-turn token ``<|im_end|>``. Nothing follows it,
    so with left padding the target is the last tokens of each row.

    Loss tokens (labels != -100): exactly the target's tokens, i.e. the
    ``<think>`` token, the caption's tokens, the ``</think>`` token and the
    closing ``<|im_end|>`` (so the model learns to stop after the caption).
    Everything else is -100: padding, the system and user turns, the video
    and stamp tokens, and the ``<|im_start|>assistant\\n`` header. Labels are
    aligned with input_ids; the model's loss shifts them by one itself.
    """
    captions = list(captions)
    _check_pairs(list(clips), captions, "captions")
    messages = [build_caption_messages()] * len(captions)
    return encode_target_examples(processor, clips, messages, [caption_target(c) for c in captions])
