"""A tiny, randomly initialised Qwen3-VL built offline, and the backbone loader.

The reranker's backbone is Qwen3-VL (8B in the paper). No weights can be
downloaded here, so tests and CPU runs use a model with the same architecture
and the same processor pipeline, built from scratch: a byte-level BPE
tokenizer trained on the caller's corpus plus the prompt texts, a Qwen3-VL
config at toy width, random weights and a Qwen3-VL processor configured for
small frames. It is saved with ``save_pretrained`` and reloaded through the
same ``AutoProcessor`` / ``AutoModelForImageTextToText`` path as a hub model,
so the code under test is the code that would run the real backbone.

Visual tokens per frame (defaults: patch 8, spatial merge 2, temporal patch 2):
one 96x96 frame is 12x12 patches of 8x8 pixels; the merger folds 2x2 patches
into one token, so a *pair* of consecutive frames (one temporal patch) becomes
6x6 = 36 tokens, i.e. 18 tokens per frame on average. An 8-frame 96x96 clip
is 4 x 36 = 144 video tokens, plus per pair a ``<t seconds>`` text stamp and
``<|vision_start|>``/``<|vision_end|>``. Spatial merge 2 (not 1) because it
keeps the 8-pixel patches (../shared/stack.md: visual token count mattered far
more than width; patch 8 gave 16 tokens per pair at 64x64 and learned well)
while staying near the ~16-36 tokens per pair that CPU training affords; merge
1 would give 144 tokens per pair.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import torch

from rankvideo.models.prompts import (
    ANSWER_PREFIX,
    CAPTION_SYSTEM,
    CAPTION_USER,
    SYSTEM,
    THINK_CLOSE,
    THINK_OPEN,
    USER,
)
from rankvideo.utils.io import atomic_dir, file_sha256

__all__ = [
    "CHAT_TEMPLATE",
    "QWEN_SPECIAL_TOKENS",
    "build_tiny_qwen3_vl",
    "grow_language_model",
    "load_backbone",
    "state_dict_sha256",
    "widen_vision_tower",
]

# Qwen's control tokens. The processor and the model look these up by text, so
# the names must match Qwen's exactly; their ids are whatever the trainer gives.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Markup of the reranker's prompts and targets. Added as whole tokens (not
# special: decoding with skip_special_tokens keeps them, as Qwen3 does for
# <think>) so that the text right after them is pre-tokenized on its own; that
# is what makes "yes"/"no" after <answer> a single, stable token.
MARKUP_TOKENS = [THINK_OPEN, THINK_CLOSE, ANSWER_PREFIX, "</answer>"]

# Qwen-style ChatML. A video item renders as a bare <|video_pad|>: the Qwen3-VL
# processor replaces it with "<t seconds><|vision_start|>...<|vision_end|>" per
# frame pair itself, so wrapping it in vision_start/end here would nest them
# (../shared/stack.md, trap 3). Images are not expanded that way, so an image
# keeps its own vision_start/end.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'video' -%}"
    "{{- '<|video_pad|>' -}}"
    "{%- elif item['type'] == 'image' -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'text' -%}"
    "{{- item['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)

# Nominal frame side the processor is sized for, and the most frames a clip
# may have before frames start being downscaled to share the pixel budget
# (the paper's 32 frames at inference).
FRAME_SIDE = 96
MAX_FRAMES = 32


def _builtin_corpus(repeat: int = 1) -> list[str]:
    """Texts every build trains the tokenizer on, so the fixed prompt text,
    the chat markup and the processor's frame stamps cost few tokens whatever
    the caller's corpus is. ``repeat`` scales them with the caller's corpus:
    BPE keeps the most frequent merges, so fixed-count texts would lose out
    to a large corpus."""
    texts = [
        SYSTEM,
        CAPTION_SYSTEM,
        CAPTION_USER,
        USER.format(query="a red square moves to the left"),
        USER.format(query="a person rides a bicycle in the rain"),
        "system user assistant",
    ]
    # The processor writes f"<{t:.1f} seconds>" before each frame pair.
    texts += [f"<{i / 10:.1f} seconds>" for i in range(0, 650, 5)]
    # The answer words, alone and after a space, often enough that BPE merges
    # them whole even when the caller's corpus is large.
    texts += ["yes no yes no yes no"] * 50 + [f"{ANSWER_PREFIX}yes</answer> {ANSWER_PREFIX}no</answer>"] * 50
    return texts * repeat


def _train_tokenizer(corpus: Sequence[str], bpe_vocab_size: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Byte level, no prefix space: "yes" after an added token stays "yes",
    # and any text (any language, any byte) round-trips.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    # Weight of the built-in texts: about 1/4 of the caller's word count (at
    # least once), which keeps "yes"/"no" and the prompt words among the most
    # frequent pairs at any corpus size.
    builtin = _builtin_corpus()
    n_words = sum(len(t.split()) for t in corpus)
    repeat = max(1, n_words // (4 * sum(len(t.split()) for t in builtin)))
    tok.train_from_iterator(list(corpus) + _builtin_corpus(repeat), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS])
    return tok


def _wrap_tokenizer(tok):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        # Left padding puts every row's last real token at position -1, which
        # is where the yes/no score is read.
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
    )
    return tokenizer


def _check_answer_tokens(tokenizer) -> None:
    """The score reads one logit per answer word, so each must be one token
    right after <answer> (where it is read) and after a space (where it shows
    up in running text)."""
    prefix = tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False)
    for word in ("yes", "no"):
        ids = tokenizer.encode(ANSWER_PREFIX + word, add_special_tokens=False)
        spaced = tokenizer.encode(" " + word, add_special_tokens=False)
        if ids[: len(prefix)] != prefix or len(ids) != len(prefix) + 1 or len(spaced) != 1:
            raise RuntimeError(
                f"tokenizer does not encode {word!r} as one token after {ANSWER_PREFIX!r} "
                f"(got {ids}) or after a space (got {spaced}); raise bpe_vocab_size"
            )


def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (time, height, width).

    Qwen3-VL interleaves the axes over the frequencies (T H W T H W ..., the
    rest T): height takes slots 1, 4, 7, ... and width 2, 5, 8, ..., so a
    spatial axis can hold at most (head_dim/2)//3 of them (a larger section
    would be cut silently). Height and width get 5/16 each, Qwen3-VL's own
    [24, 20, 20] for head_dim 128, capped at that limit: [4, 2, 2] for 16.
    """
    half = head_dim // 2
    spatial = max(1, min(half * 5 // 16, half // 3))
    return [half - 2 * spatial, spatial, spatial]


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict (name, dtype, shape, bytes),
    in name order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        # Viewed as bytes so bfloat16 (which numpy cannot hold) hashes too.
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def build_tiny_qwen3_vl(
    out_dir: str | os.PathLike[str],
    *,
    corpus: Sequence[str],
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vision_depth: int = 2,
    vision_hidden: int = 32,
    vision_heads: int = 2,
    patch_size: int = 8,
    temporal_patch_size: int = 2,
    spatial_merge_size: int = 2,
    deepstack_visual_indexes: Sequence[int] = (0,),
    vocab_size: int | None = None,
    bpe_vocab_size: int = 1024,
    initializer_range: float = 0.02,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Build, save and return the folder of a tiny random-init Qwen3-VL.

    ``out_dir`` receives ``save_pretrained`` output of the model and of its
    processor (tokenizer, chat template, image and video processors) and a
    ``build_info.json`` (arguments, config, parameter count, tokenizer and
    weight hashes). The folder appears atomically: it is built in a hidden
    sibling folder and renamed into place, so an interrupted build never
    leaves a half-written model under ``out_dir``. An existing ``out_dir``
    is an error unless ``overwrite``.

    Deterministic: the same arguments give the same tokenizer and bit-identical
    weights (``build_info.json["state_dict_sha256"]``).

    ``deepstack_visual_indexes``: vision layers whose features are also added
    to the first language-model layers (Qwen3-VL's DeepStack); one level keeps
    that code path exercised at toy size. ``vocab_size`` defaults to the
    tokenizer size rounded up to a multiple of 64.

    ``initializer_range`` is the standard deviation of the normal init of
    every weight matrix (language model, vision tower, mergers, head).
    transformers' 0.02 is sized for widths in the thousands; 1/sqrt(width) is
    the usual scale for a narrow model, and ``scripts/probe_binding.py``
    compares the two on this benchmark.
    """
    if isinstance(corpus, str):
        raise TypeError("corpus must be a list of strings, not one string")
    corpus = list(corpus)
    if not all(isinstance(t, str) for t in corpus):
        raise TypeError("corpus must be a list of strings")
    if not initializer_range > 0:
        raise ValueError(f"initializer_range must be > 0, got {initializer_range}")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads {num_heads} is not a multiple of num_kv_heads {num_kv_heads}")
    if vision_hidden % vision_heads or (vision_hidden // vision_heads) % 4:
        # The vision rotary embedding splits each head over height and width,
        # each half again into cos/sin pairs.
        raise ValueError(f"vision_hidden / vision_heads must be a multiple of 4, got {vision_hidden}/{vision_heads}")
    head_dim = hidden_size // num_heads
    if head_dim % 2 or head_dim // 2 < 3:
        raise ValueError(f"head_dim {head_dim} too small for 3-axis M-RoPE")
    deepstack_visual_indexes = [int(i) for i in deepstack_visual_indexes]
    if any(not 0 <= i < vision_depth for i in deepstack_visual_indexes) or len(deepstack_visual_indexes) > num_layers:
        raise ValueError(
            f"deepstack_visual_indexes {deepstack_visual_indexes} must be vision layers (< {vision_depth}) "
            f"and at most num_layers={num_layers} of them"
        )

    out_dir = Path(os.fspath(out_dir))
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True to replace it")

    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    tokenizer = _wrap_tokenizer(_train_tokenizer(corpus, bpe_vocab_size))
    _check_answer_tokens(tokenizer)
    n_tok = len(tokenizer)
    if vocab_size is None:
        vocab_size = -(-n_tok // 64) * 64
    elif vocab_size < n_tok:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tokenizer ({n_tok} tokens)")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}

    factor = patch_size * spatial_merge_size
    # Learned vision position grid sized to a nominal frame; other sizes are
    # interpolated from it by the model.
    grid_side = FRAME_SIDE // patch_size
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": hidden_size,
            "intermediate_size": intermediate_size or 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_kv_heads,
            "head_dim": head_dim,
            "max_position_embeddings": 8192,
            "initializer_range": initializer_range,
            "pad_token_id": ids["<|endoftext|>"],
            "rope_parameters": {
                "rope_type": "default",
                # A short-context toy: Qwen3-VL's 5e6 base would leave most
                # of a 16-dim head's frequencies unused at positions < 1000.
                "rope_theta": 10000.0,
                "mrope_section": _mrope_section(head_dim),
                # Qwen3-VL always interleaves T/H/W (the flag documents it;
                # the model's rotary embedding is interleaved regardless).
                "mrope_interleaved": True,
            },
        },
        vision_config={
            "depth": vision_depth,
            "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden,
            "num_heads": vision_heads,
            "patch_size": patch_size,
            "temporal_patch_size": temporal_patch_size,
            "spatial_merge_size": spatial_merge_size,
            "out_hidden_size": hidden_size,
            "num_position_embeddings": grid_side * grid_side,
            "deepstack_visual_indexes": deepstack_visual_indexes,
            "initializer_range": initializer_range,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,  # as Qwen3-VL-8B
        initializer_range=initializer_range,
    )

    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], do_sample=False
    )

    frame_pixels = FRAME_SIDE * FRAME_SIDE
    image_processor = Qwen2VLImageProcessor(
        patch_size=patch_size,
        temporal_patch_size=temporal_patch_size,
        merge_size=spatial_merge_size,
        # Per image: at least one merged token, at most one nominal frame.
        size={"shortest_edge": factor * factor, "longest_edge": frame_pixels},
    )
    video_processor = Qwen3VLVideoProcessor(
        patch_size=patch_size,
        temporal_patch_size=temporal_patch_size,
        merge_size=spatial_merge_size,
        # `size` is a pixel budget for the whole clip (frames x H x W), not
        # per frame. With cap_pixels_per_frame each frame is further capped
        # at max_video_tokens * factor**2 pixels = one FRAME_SIDE^2 frame, so
        # a 96x96 frame is never upscaled or downscaled (sides are only
        # rounded to multiples of `factor`), larger frames shrink to that
        # area, and only clips of more than MAX_FRAMES frames share the budget.
        size={"shortest_edge": temporal_patch_size * factor * factor, "longest_edge": MAX_FRAMES * frame_pixels},
        cap_pixels_per_frame=True,
        max_video_tokens=frame_pixels // (factor * factor),
        # We sample frames ourselves (rankvideo.data.video.read_clip); the
        # processor must take them as they are (stack.md trap 3).
        do_sample_frames=False,
    )
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )

    tokens_per_pair = (FRAME_SIDE // patch_size) ** 2 // (spatial_merge_size**2)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}.tmp"
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        info = {
            "builder": "rankvideo.models.tiny.build_tiny_qwen3_vl",
            "args": {
                "hidden_size": hidden_size,
                "num_layers": num_layers,
                "num_heads": num_heads,
                "num_kv_heads": num_kv_heads,
                "intermediate_size": intermediate_size,
                "vision_depth": vision_depth,
                "vision_hidden": vision_hidden,
                "vision_heads": vision_heads,
                "patch_size": patch_size,
                "temporal_patch_size": temporal_patch_size,
                "spatial_merge_size": spatial_merge_size,
                "deepstack_visual_indexes": deepstack_visual_indexes,
                "vocab_size": vocab_size,
                "bpe_vocab_size": bpe_vocab_size,
                "initializer_range": initializer_range,
                "seed": seed,
                "corpus_size": len(corpus),
                "corpus_sha256": hashlib.sha256("\x00".join(corpus).encode()).hexdigest(),
            },
            "param_count": n_params,
            "tokenizer_size": n_tok,
            "tokenizer_sha256": file_sha256(tmp / "tokenizer.json"),
            "state_dict_sha256": state_dict_sha256(model),
            "visual_tokens_per_frame_pair": {f"{FRAME_SIDE}x{FRAME_SIDE}": tokens_per_pair},
            "config": config.to_dict(),
        }
        (tmp / "build_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            # overwrite: move the old build aside first, so out_dir is either
            # the old or the new complete build at every moment but one rename.
            old = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}.old"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def grow_language_model(src: str | os.PathLike[str], dst: str | os.PathLike[str], extra_layers: int, *,
                        seed: int = 0) -> Path:
    """Deepen a saved Qwen3-VL's language model: `extra_layers` decoder layers appended after the
    last one, initialised like the builder's (normal, std `initializer_range`; norms at 1) except
    their output projections (attention `o_proj`, MLP `down_proj`), which start at zero. A new layer
    then adds nothing to the residual stream, so the grown model computes what `src` computed (same
    logits) until training moves them. Writes model and processor to `dst` atomically."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if extra_layers < 1:
        raise ValueError(f"extra_layers must be >= 1, got {extra_layers}")
    src, dst = Path(src), Path(dst)
    model = AutoModelForImageTextToText.from_pretrained(src, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(src)
    text_cfg = model.config.text_config
    lm = model.model.language_model
    layer_cls = type(lm.layers[0])
    n = len(lm.layers)
    gen = torch.Generator().manual_seed(seed)
    for i in range(n, n + extra_layers):
        layer = layer_cls(text_cfg, i)
        for name, w in layer.named_parameters():
            with torch.no_grad():
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    w.zero_()
                elif w.ndim == 1:
                    w.fill_(1.0)
                else:
                    w.copy_(torch.randn(w.shape, generator=gen) * float(text_cfg.initializer_range))
        lm.layers.append(layer)
    text_cfg.num_hidden_layers = n + extra_layers
    if getattr(text_cfg, "layer_types", None) is not None:
        text_cfg.layer_types = list(text_cfg.layer_types) + [text_cfg.layer_types[-1]] * extra_layers
    with atomic_dir(dst) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return dst


def _widened_vision_state(state: dict[str, torch.Tensor], k: int, merge_units: int) -> dict[str, torch.Tensor]:
    """The vision tower's state dict at k times its width, computing the same function.

    Every width of the tower (the residual stream, attention heads, the MLP's inner width, the
    mergers' inner width) is repeated k times as whole blocks: a residual state x becomes
    [x, x, ..., x]. Weights that read a repeated input are tiled and divided by k (so each output
    sums the k equal copies back to one), weights that write one are tiled; a LayerNorm over k
    copies of x has x's mean and variance, so its affine parameters are tiled. The attention keeps
    its head width and gets k times the heads (copies of the originals, in order), so the rotary
    embedding is unchanged. `merge_units`: patches a merger folds into one token (spatial merge
    squared); a merger's input is that many residual states side by side."""
    out = {}
    for name, w in state.items():
        if name == "pos_embed.weight":
            out[name] = w.repeat(1, k)
        elif name == "patch_embed.proj.weight":
            out[name] = w.repeat(k, *([1] * (w.ndim - 1)))
        elif name.startswith("deepstack_merger_list.") and ".norm." in name:
            # a norm over merge_units residual states side by side (after the shuffle)
            out[name] = w.view(merge_units, -1).repeat(1, k).reshape(-1)
        elif name.endswith("attn.qkv.weight"):
            out[name] = w.view(3, -1, w.shape[1]).repeat(1, k, k).reshape(-1, k * w.shape[1]) / k
        elif name.endswith("attn.qkv.bias"):
            out[name] = w.view(3, -1).repeat(1, k).reshape(-1)
        elif "merger" in name and name.endswith("linear_fc1.weight"):
            d_out, d_in = w.shape
            out[name] = w.view(d_out, merge_units, d_in // merge_units).repeat(k, 1, k).reshape(k * d_out, k * d_in) / k
        elif "merger" in name and name.endswith("linear_fc2.weight"):
            out[name] = w.repeat(1, k) / k   # writes the language model's width, which stays
        elif "merger" in name and name.endswith("linear_fc2.bias"):
            out[name] = w.clone()
        elif w.ndim == 2:
            out[name] = w.repeat(k, k) / k
        elif w.ndim == 1:
            out[name] = w.repeat(k)
        else:
            raise ValueError(f"widen_vision_tower: no rule for parameter {name} of shape {tuple(w.shape)}")
    return out


def widen_vision_tower(src: str | os.PathLike[str], dst: str | os.PathLike[str], factor: int, *,
                       noise: float = 1e-3, seed: int = 0) -> Path:
    """Widen a saved Qwen3-VL's vision tower `factor` times (hidden size, MLP width, heads, the
    mergers' inner width; the head width, depth and the language model stay), starting from a
    tower that computes what `src`'s computes (see `_widened_vision_state`). The copies of a unit
    would get equal gradients for ever, so every widened matrix gets Gaussian noise of `noise`
    times its own standard deviation (seeded; 0 keeps the function exactly). Writes model and
    processor to `dst` atomically."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 2:
        raise ValueError(f"factor must be an integer >= 2, got {factor!r}")
    src, dst = Path(src), Path(dst)
    model = AutoModelForImageTextToText.from_pretrained(src, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(src)
    vcfg = model.config.vision_config
    old = {n: p.detach().clone() for n, p in model.model.visual.state_dict().items()}
    state = _widened_vision_state(old, factor, int(vcfg.spatial_merge_size) ** 2)
    gen = torch.Generator().manual_seed(seed)
    if noise:
        for name, w in state.items():
            if w.ndim >= 2 and w.shape != old[name].shape:
                w += torch.randn(w.shape, generator=gen) * (noise * float(old[name].std()))
    vcfg.hidden_size *= factor
    vcfg.intermediate_size *= factor
    vcfg.num_heads *= factor
    visual = type(model.model.visual)._from_config(vcfg)
    visual.load_state_dict(state, strict=True)
    model.model.visual = visual
    with atomic_dir(dst) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return dst


def _looks_like_path(s: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with a separator, or
    # starting like a path, was meant as a local folder.
    return s.startswith((".", "/", "~")) or s.count("/") > 1 or "\\" in s


def _source(path_or_hub_id, trust_remote_code: bool) -> tuple[str, dict]:
    """(what to pass to from_pretrained, its kwargs): a local folder is read with
    local_files_only=True (never the network); a hub id passes through; a path-like string that is
    not a folder is an error here rather than a confusing hub lookup."""
    src = os.fspath(path_or_hub_id)
    kwargs: dict = {"trust_remote_code": trust_remote_code}
    if os.path.isdir(os.path.expanduser(src)):
        return os.path.expanduser(src), {**kwargs, "local_files_only": True}
    if isinstance(path_or_hub_id, os.PathLike) or _looks_like_path(src) or os.path.exists(src):
        raise FileNotFoundError(f"backbone folder {src!r} does not exist (or is not a folder)")
    return src, kwargs


def load_processor(path_or_hub_id: str | os.PathLike[str], *, trust_remote_code: bool = False):
    """The processor of a backbone folder or hub id, with the same offline rules as load_backbone."""
    from transformers import AutoProcessor

    src, kwargs = _source(path_or_hub_id, trust_remote_code)
    return AutoProcessor.from_pretrained(src, **kwargs)


def load_backbone(path_or_hub_id: str | os.PathLike[str], *, trust_remote_code: bool = False, dtype=None, **model_kwargs):
    """Load ``(model, processor)`` through the Auto classes.

    A local folder (e.g. from :func:`build_tiny_qwen3_vl`) is loaded with
    ``local_files_only=True``, so nothing touches the network. Anything else
    is passed through unchanged as a hub id, for users who have a hub (e.g.
    ``Qwen/Qwen3-VL-8B-Instruct``). A path-like string that is not a folder
    is an error here rather than a confusing hub lookup. ``dtype``: a torch
    dtype or its name; None keeps the library default. The model is returned
    in eval mode (as ``from_pretrained`` leaves it): call ``.train()`` to train.
    """
    from transformers import AutoModelForImageTextToText

    src, kwargs = _source(path_or_hub_id, trust_remote_code)
    processor = load_processor(path_or_hub_id, trust_remote_code=trust_remote_code)
    model_kwargs = {**kwargs, **model_kwargs}  # e.g. quantization_config for peft=qlora
    if dtype is not None:
        model_kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    model = AutoModelForImageTextToText.from_pretrained(src, **model_kwargs)
    model.eval()
    # Remembered on the model so score_batch needs no tokenizer; a tokenizer
    # whose answer words are not single tokens is reported when scoring.
    from rankvideo.models.scoring import yes_no_token_ids

    try:
        model._rankvideo_yes_no_ids = yes_no_token_ids(processor.tokenizer)
    except ValueError:
        pass
    return model, processor
