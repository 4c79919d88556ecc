"""Prompt presets (paper, official_inference, official_training): `score_pairs` under each equals
a derivation written out here by hand, from the official code's strings, the logits at the
position the official code reads, and its yes/no rule, alone, in a left-padded batch, and grouped
by video. Nothing in the derivation calls the presets' own encoding or scoring code."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from rankvideo.data.video import Clip
from rankvideo.models.grouped import score_queries_for_video
from rankvideo.models.prompts import PRESETS, PromptPreset, build_messages, get_preset
from rankvideo.models.scoring import _process, answer_margin, answer_token_ids, pair_text, score_pairs
from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The strings of the official code (inference.py and train_reranker.py), typed out here.
OFFICIAL_INFERENCE_SYSTEM = ("You are a helpful assistant specialized in video and text understanding. Given a text "
                             "query and a video, your task is to determine if the video is relevant to the query. "
                             "Respond with <answer>yes</answer> if the video is relevant, or <answer>no</answer> if "
                             "it is not. ")
OFFICIAL_INFERENCE_USER = ("Query: {q}\nIs the video relevant to the query? Respond with <answer>yes</answer> or "
                           "<answer>no</answer>.")
OFFICIAL_TRAINING_SYSTEM = ("You are a helpful assistant specialized in video and text understanding. Given a text "
                            "query and a video, determine if the video is relevant.")
OFFICIAL_TRAINING_USER = "Query: {q}\nIs the video relevant? Answer with yes or no."
PAPER_SYSTEM = ("You are a helpful assistant specialized in video and text understanding. Given a text query and a "
                "video, your task is to determine if the video is relevant to the query. Respond with "
                "<answer>yes</answer> if the video is relevant to the query or <answer>no</answer> if it is not.")
PAPER_USER = ("Query: {q}\nIs the video relevant to the query? Respond with <answer>yes</answer> or "
              "<answer>no</answer>.")

# The tiny chat template (rankvideo.models.tiny) marks a video with one <|video_pad|>.
VIDEO = "<|video_pad|>"


def expected_text(preset: str, q: str) -> str:
    """The chat text of one pair, by hand: system turn, user turn, assistant header, appended text."""
    system, user, video_first, appended = {
        "paper": (PAPER_SYSTEM, PAPER_USER, True, "<answer>"),
        "official_inference": (OFFICIAL_INFERENCE_SYSTEM, OFFICIAL_INFERENCE_USER, False, ""),
        "official_training": (OFFICIAL_TRAINING_SYSTEM, OFFICIAL_TRAINING_USER, True, "<answer>"),
    }[preset]
    u = user.format(q=q)
    u = VIDEO + u if video_first else u + VIDEO
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{u}<|im_end|>\n"
            f"<|im_start|>assistant\n{appended}")


QUERIES = ["a red square", "Yes or no: a flood in Lima with a blue circle moving left"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model"
    # Spellings of yes and no in the corpus, so that the tokenizer has several of each.
    build_tiny_qwen3_vl(path, corpus=["Yes yes YES no No NO, yes. no!", *QUERIES] * 5, seed=3)
    return load_backbone(path)


def _clip(seed: int, n: int = 4) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(rng.integers(0, 255, (n, 96, 96, 3), dtype=np.uint8), np.arange(n) * 0.5, 8.0, f"clip{seed}")


def hand_ids(tok, preset: str):
    """Yes/no ids by each rule, from the tokenizer alone."""
    if preset == "official_inference":  # every base-vocabulary id decoding to yes / no
        yes = [i for i in range(tok.vocab_size) if tok.decode([i]).strip().lower() == "yes"]
        no = [i for i in range(tok.vocab_size) if tok.decode([i]).strip().lower() == "no"]
        return yes, no
    if preset == "official_training":  # the first token of the bare word
        return [tok.encode("yes", add_special_tokens=False)[0]], [tok.encode("no", add_special_tokens=False)[0]]
    prefix = tok.encode("<answer>", add_special_tokens=False)  # paper: the token after <answer>
    return [tok.encode("<answer>yes", add_special_tokens=False)[len(prefix)]], \
        [tok.encode("<answer>no", add_special_tokens=False)[len(prefix)]]


def lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def hand_score(model, processor, clip: Clip, q: str, preset: str) -> float:
    """One pair, unpadded, the text written by hand; the logits of the last position (the one
    after the assistant header for official_inference, the `<answer>` token otherwise)."""
    batch = _process(processor, [expected_text(preset, q)], [clip])
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}, use_cache=False).logits
    last = logits[0, batch["input_ids"].shape[1] - 1].double().tolist()
    yes, no = hand_ids(processor.tokenizer, preset)
    if not yes or not no:
        return 0.0
    return lse([last[i] for i in yes]) - lse([last[i] for i in no])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_rendered_text_is_the_official_string(tiny, preset):
    _, proc = tiny
    for q in QUERIES:
        assert pair_text(proc, q, preset) == expected_text(preset, q)


def test_the_presets_differ_where_the_official_code_does(tiny):
    _, proc = tiny
    assert get_preset("official_inference").answer_prefix == ""
    assert build_messages("q", "official_inference")[1]["content"][1] == {"type": "video"}
    assert build_messages("q", "paper")[1]["content"][0] == {"type": "video"}
    # The tiny tokenizer knows several spellings; the official rule counts them all.
    yes, no = answer_token_ids(proc, "official_inference")
    assert len(yes) >= 3 and len(no) >= 3
    assert answer_token_ids(proc, "paper") == tuple(tuple(x) for x in hand_ids(proc.tokenizer, "paper"))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_score_pairs_equals_the_hand_derivation_alone_batched_and_grouped(tiny, preset):
    model, proc = tiny
    clips = [_clip(1), _clip(2, n=6)]
    want = [hand_score(model, proc, c, q, preset) for c, q in zip(clips, QUERIES)]
    with torch.no_grad():
        alone = [score_pairs(model, proc, [c], [q], prompt=preset).item() for c, q in zip(clips, QUERIES)]
        batched = score_pairs(model, proc, clips, QUERIES, prompt=preset)  # lengths differ: left-padded
    assert batched.dtype == torch.float32 and batched.shape == (2,)
    assert np.allclose(alone, want, atol=1e-5), (alone, want)
    assert np.allclose(batched.tolist(), want, atol=1e-5), (batched.tolist(), want)
    # Grouped by video (one vision pass for both queries) against the hand derivation per pair.
    grouped = score_queries_for_video(model, proc, clips[0], QUERIES, prompt=preset)
    assert np.allclose(grouped, [hand_score(model, proc, clips[0], q, preset) for q in QUERIES], atol=1e-5)


def test_answer_margin_by_hand():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, -1.0, 0.5, 0.0]])
    assert answer_margin(logits, ((3,), (1,))).tolist() == [2.0, 1.0]
    got = answer_margin(logits, ((2, 3), (0, 1))).tolist()
    assert np.allclose(got, [lse([2.0, 3.0]) - lse([0.0, 1.0]), lse([0.5, 0.0]) - lse([1.0, -1.0])], atol=1e-6)
    # The official code scores 0.0 when the vocabulary has no spelling of one answer.
    assert answer_margin(logits, ((), (1,))).tolist() == [0.0, 0.0]


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown prompt preset 'officiel'.*official_inference.*paper"):
        get_preset("officiel")
    with pytest.raises(ValueError, match="no \\{query\\} field"):
        PromptPreset("x", "s", "no field", video_first=True, answer_prefix="", answer_ids="variants")
