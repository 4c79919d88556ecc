"""Tests for the tiny offline Qwen3-VL backbone, the prompts and the yes/no score.

The tiny model is built once per module into a temporary folder and loaded
back through AutoProcessor / AutoModelForImageTextToText, the same path a hub
checkpoint takes. Clips are synthetic numpy frames (solid colours, coloured
squares), so nothing is decoded, downloaded or read from the hub.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub

import numpy as np
import pytest
import torch

from rankvideo.data.video import Clip
from rankvideo.models import prompts, tiny
from rankvideo.models.prompts import ANSWER_PREFIX, SYSTEM, USER, build_messages
from rankvideo.utils.io import file_sha256
from rankvideo.models.scoring import (
    IGNORE_INDEX,
    answer_position,
    answer_target,
    encode_caption_examples,
    encode_conversations,
    encode_pairs,
    encode_target_examples,
    score_batch,
    video_inputs,
    yes_no_token_ids,
)
from rankvideo.models.tiny import build_tiny_qwen3_vl, load_backbone, state_dict_sha256

CORPUS = [
    "a red square moves to the left",
    "a blue circle bounces on the floor",
    "two green triangles spin slowly",
    "is the frame red",
    "a person walks a dog in the park",
]
SIDE = 96


def solid(rgb, frames: int = 4, fps: float = 2.0, start: float = 0.0) -> Clip:
    f = np.empty((frames, SIDE, SIDE, 3), np.uint8)
    f[...] = np.asarray(rgb, np.uint8)
    return Clip(frames=f, timestamps=start + np.arange(frames) / fps, native_fps=fps, path="synthetic")


def square(rgb, frames: int = 4, size: int = 32) -> Clip:
    """A coloured square on grey moving right by 8 px per frame."""
    f = np.full((frames, SIDE, SIDE, 3), 128, np.uint8)
    for t in range(frames):
        x = 8 + 8 * t
        f[t, 32 : 32 + size, x : x + size] = rgb
    return Clip(frames=f, timestamps=np.arange(frames) / 2.0, native_fps=2.0, path="synthetic")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "qwen3vl"
    t0 = time.perf_counter()
    path = build_tiny_qwen3_vl(out, corpus=CORPUS, seed=0)
    build_s = time.perf_counter() - t0
    return path, build_s


@pytest.fixture(scope="module")
def backbone(built):
    torch.manual_seed(0)
    model, processor = load_backbone(built[0])
    return model, processor


def test_build_writes_loadable_folder_with_build_info(built, backbone):
    path, build_s = built
    model, processor = backbone
    info = json.loads((path / "build_info.json").read_text())
    assert info["param_count"] == sum(p.numel() for p in model.parameters())
    assert info["param_count"] < 1_000_000  # tiny: CPU tests stay fast
    assert info["state_dict_sha256"] == state_dict_sha256(model)
    assert info["tokenizer_sha256"] == file_sha256(path / "tokenizer.json")
    assert info["visual_tokens_per_frame_pair"] == {"96x96": 36}
    assert info["config"]["text_config"]["vocab_size"] >= len(processor.tokenizer)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen3VLProcessor"
    # No temporary build folders are left next to the result.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    print(f"\nbuild {build_s:.2f} s, {info['param_count']} params, vocab {info['tokenizer_size']}")

    text_cfg = model.config.text_config
    assert sum(text_cfg.rope_parameters["mrope_section"]) == text_cfg.head_dim // 2
    assert model.config.vision_config.out_hidden_size == text_cfg.hidden_size
    tok = processor.tokenizer
    assert model.config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert tok.padding_side == "left" and tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_existing_folder_is_refused_unless_overwrite(built, tmp_path):
    path, _ = built
    with pytest.raises(FileExistsError):
        build_tiny_qwen3_vl(path, corpus=CORPUS)
    with pytest.raises(ValueError, match="vocab_size"):
        build_tiny_qwen3_vl(tmp_path / "small", corpus=CORPUS, vocab_size=10)
    assert not (tmp_path / "small").exists()


def _no_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_round_trip_keeps_weights_and_logits(built, backbone, tmp_path, monkeypatch):
    _no_network(monkeypatch)  # a local folder must load without touching the network
    path, _ = built
    model, processor = backbone
    batch = encode_pairs(processor, [square((255, 0, 0)), solid((0, 0, 255))], ["a red square", "blue"])
    with torch.no_grad():
        before = model(**batch, use_cache=False).logits
    # Weights hashed in memory at build time equal the loaded ones...
    info = json.loads((path / "build_info.json").read_text())
    assert state_dict_sha256(model) == info["state_dict_sha256"]
    # ...and a save / load cycle through the Auto classes changes nothing.
    model.save_pretrained(tmp_path / "again")
    processor.save_pretrained(tmp_path / "again")
    model2, processor2 = load_backbone(tmp_path / "again")
    batch2 = encode_pairs(processor2, [square((255, 0, 0)), solid((0, 0, 255))], ["a red square", "blue"])
    assert torch.equal(batch["input_ids"], batch2["input_ids"])
    assert torch.equal(batch["pixel_values_videos"], batch2["pixel_values_videos"])
    with torch.no_grad():
        after = model2(**batch2, use_cache=False).logits
    assert torch.equal(before, after)


def test_build_is_deterministic(built, tmp_path):
    path, _ = built
    info = json.loads((path / "build_info.json").read_text())
    again = json.loads((build_tiny_qwen3_vl(tmp_path / "a", corpus=CORPUS, seed=0) / "build_info.json").read_text())
    assert again["state_dict_sha256"] == info["state_dict_sha256"]
    assert again["tokenizer_sha256"] == info["tokenizer_sha256"]
    other = json.loads((build_tiny_qwen3_vl(tmp_path / "b", corpus=CORPUS, seed=1) / "build_info.json").read_text())
    assert other["state_dict_sha256"] != info["state_dict_sha256"]
    assert other["tokenizer_sha256"] == info["tokenizer_sha256"]  # the seed only affects weights


def test_initializer_range_sets_the_scale_of_every_weight_matrix(tmp_path):
    # 1/sqrt(width) instead of the large-model 0.02: the std of every matrix (language model, vision
    # tower, mergers, lm_head) follows the argument, and build_info records it.
    path = build_tiny_qwen3_vl(tmp_path / "wide", corpus=CORPUS, seed=0, initializer_range=0.125)
    model, _ = load_backbone(path)
    stds = {n: float(p.std()) for n, p in model.named_parameters() if p.dim() >= 2}
    assert any(".visual." in f".{n}" for n in stds) and "lm_head.weight" in stds
    assert all(0.11 < s < 0.14 for s in stds.values()), stds
    assert json.loads((path / "build_info.json").read_text())["args"]["initializer_range"] == 0.125
    with pytest.raises(ValueError, match="initializer_range"):
        build_tiny_qwen3_vl(tmp_path / "zero", corpus=CORPUS, initializer_range=0.0)


def test_yes_and_no_are_single_tokens(backbone):
    _, processor = backbone
    tok = processor.tokenizer
    yes_id, no_id = yes_no_token_ids(tok)
    assert yes_no_token_ids(processor) == (yes_id, no_id)
    assert tok.convert_ids_to_tokens([yes_id, no_id]) == ["yes", "no"]
    assert len(tok.encode(" yes", add_special_tokens=False)) == 1


def test_yes_no_check_fails_loudly_for_a_splitting_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # Bytes only, no merges: every word is split into characters.
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    raw = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, name_or_path="bytes-only")
    with pytest.raises(ValueError, match=r"bytes-only.*'yes'"):
        yes_no_token_ids(tok)


def test_encoded_prompt_has_paper_prompt_query_answer_prefix_and_video(backbone):
    model, processor = backbone
    query = "a red square moves to the right"
    batch = encode_pairs(processor, [square((255, 0, 0), frames=8)], [query])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert SYSTEM in text
    assert USER.format(query=query) in text
    assert text.endswith(ANSWER_PREFIX)
    assert text.rstrip().endswith("<|im_start|>assistant\n" + ANSWER_PREFIX)

    grid = batch["video_grid_thw"]
    assert grid.tolist() == [[4, 12, 12]]  # 8 frames -> 4 temporal patches of 12x12 patches
    merge = processor.video_processor.merge_size
    n_video = int((batch["input_ids"] == model.config.video_token_id).sum())
    assert n_video > 0
    assert n_video == int(grid.prod(-1).sum()) // merge**2 == 4 * 36
    # The model sees exactly those tokens as video in its 3-D positions.
    assert int((batch["mm_token_type_ids"] == 2).sum()) == n_video
    # One stamp and one vision_start per frame pair, the stamps from the clip's clock.
    assert text.count("<|vision_start|>") == 4
    for stamp in ("<0.2 seconds>", "<1.2 seconds>", "<2.2 seconds>", "<3.2 seconds>"):
        assert stamp in text
    assert batch["pixel_values_videos"].shape[0] == int(grid.prod(-1).sum())


def test_messages_shape():
    msgs = build_messages("dogs")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"][0]["text"] == prompts.SYSTEM
    assert msgs[1]["content"][0] == {"type": "video"}
    assert msgs[1]["content"][1]["text"] == "Query: dogs\nIs the video relevant to the query? Respond with <answer>yes</answer> or <answer>no</answer>."
    with pytest.raises(ValueError):
        build_messages("  ")


def test_video_inputs_keep_real_timestamps_and_pad_odd_clips():
    # 25 fps source sampled at 2 fps, cut from a longer stream (starts at 10 s).
    clip = Clip(
        frames=np.zeros((3, 64, 80, 3), np.uint8),
        timestamps=np.array([10.0, 10.52, 11.0]),
        native_fps=25.0,
        path="x",
    )
    frames, md = video_inputs(clip)
    assert frames.shape == (4, 64, 80, 3)  # padded to whole temporal patches
    assert md.fps == 25.0
    assert md.frames_indices == [0, 13, 25, 25]  # re-zeroed, last frame repeated
    assert md.timestamps == pytest.approx([0.0, 0.52, 1.0, 1.0])
    one = Clip(frames=np.zeros((1, 32, 32, 3), np.uint8), timestamps=np.array([0.0]), native_fps=0.0, path="x")
    frames, md = video_inputs(one)
    assert frames.shape[0] == 2 and md.fps == 1000.0 and md.frames_indices == [0, 0]


def test_odd_and_single_frame_clips_encode_and_score(backbone):
    model, processor = backbone
    clips = [square((255, 0, 0), frames=3), solid((0, 255, 0), frames=1), solid((0, 0, 255), frames=5)]
    batch = encode_pairs(processor, clips, ["red", "green", "blue"])
    assert batch["video_grid_thw"][:, 0].tolist() == [2, 1, 3]
    with torch.no_grad():
        s = score_batch(model, batch)
    assert s.shape == (3,) and torch.isfinite(s).all()


def test_answer_position_is_last_token_with_left_padding(backbone):
    _, processor = backbone
    queries = ["red", "a much longer query about a red square that moves quickly to the left edge", "blue circle"]
    batch = encode_pairs(processor, [solid((255, 0, 0))] * 3, queries)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert not bool(mask.all())  # the rows really are padded
    assert bool((mask[:, 0] == 0).any()) and bool(mask[:, -1].all())  # ...on the left
    pos = answer_position(ids, mask)
    assert pos.tolist() == [ids.shape[1] - 1] * 3
    answer_id = processor.tokenizer.convert_tokens_to_ids(ANSWER_PREFIX)
    assert ids[:, -1].tolist() == [answer_id] * 3
    # On a right-padded copy the helper still finds the last real token.
    right = torch.stack([torch.roll(m, -int((m == 0).sum())) for m in mask])
    assert answer_position(ids, right).tolist() == [int(m.sum()) - 1 for m in mask]


def test_score_is_batch_invariant_and_depends_on_the_video(backbone):
    model, processor = backbone
    clip = square((255, 0, 0))
    with torch.no_grad():
        alone = score_batch(model, encode_pairs(processor, [clip], ["a red square"]))
        batch = encode_pairs(
            processor,
            [solid((0, 0, 255), frames=6), clip, square((0, 255, 0), frames=2)],
            ["a much longer query about a blue screen that never changes at all", "a red square", "green"],
        )
        together = score_batch(model, batch)
        other_video = score_batch(model, encode_pairs(processor, [solid((0, 0, 255))], ["a red square"]))
    assert alone.dtype == torch.float32 and alone.shape == (1,)
    assert torch.allclose(alone[0], together[1], atol=1e-4)
    assert abs(alone.item() - other_video.item()) > 1e-4  # the video reaches the yes/no logits

    # The score is exactly the yes/no logit margin at the last position.
    yes_id, no_id = yes_no_token_ids(processor.tokenizer)
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits
    assert torch.allclose(together, logits[:, -1, yes_id] - logits[:, -1, no_id], atol=1e-5)


def test_score_refuses_right_padding_and_missing_mm_token_types(backbone):
    model, processor = backbone
    batch = encode_pairs(processor, [solid((255, 0, 0))] * 2, ["red", "a longer query here"])
    bad = dict(batch)
    bad["attention_mask"] = batch["attention_mask"].clone()
    bad["attention_mask"][0, -1] = 0
    with pytest.raises(ValueError, match="right-padded"):
        score_batch(model, bad)
    bad = {k: v for k, v in batch.items() if k != "mm_token_type_ids"}
    with pytest.raises(ValueError, match="mm_token_type_ids"):
        score_batch(model, bad)


def test_stage1_labels_cover_exactly_the_caption_target(backbone):
    model, processor = backbone
    tok = processor.tokenizer
    captions = ["a red square moves to the right", "blue"]
    batch = encode_caption_examples(processor, [square((255, 0, 0)), solid((0, 0, 255))], captions)
    labels, ids = batch["labels"], batch["input_ids"]
    assert labels.shape == ids.shape
    for i, caption in enumerate(captions):
        keep = labels[i] != IGNORE_INDEX
        assert torch.equal(labels[i][keep], ids[i][keep])
        assert tok.decode(labels[i][keep]) == f"<think>{caption}</think><|im_end|>"
        # One contiguous span at the end of the row.
        n = int(keep.sum())
        assert bool(keep[-n:].all()) and not bool(keep[:-n].any())
    assert not bool((labels[batch["attention_mask"] == 0] != IGNORE_INDEX).any())
    assert not bool((labels[ids == model.config.video_token_id] != IGNORE_INDEX).any())

    model.zero_grad()
    model.train()
    try:
        out = model(**batch, use_cache=False)
        assert torch.isfinite(out.loss)
        out.loss.backward()
    finally:
        model.eval()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["lm_head.weight"] is not None and torch.isfinite(grads["lm_head.weight"]).all()
    visual = [g for n, g in grads.items() if n.startswith("model.visual.") and g is not None]
    assert visual and any(bool(g.abs().sum() > 0) for g in visual)  # the loss reaches the vision tower
    model.zero_grad(set_to_none=True)


def test_answer_labels_and_the_score_read_the_same_logit(backbone):
    """A yes/no answer target puts the answer word right after <answer>: the logit that the
    answer's label trains is the one score_batch reads for the same question in the paper's prompt."""
    model, processor = backbone
    tok = processor.tokenizer
    clip = square((255, 0, 0))
    batch = encode_target_examples(processor, [clip], [build_messages("a red square")], [answer_target("yes")])
    labels = batch["labels"][0]
    keep = labels != IGNORE_INDEX
    assert tok.decode(labels[keep]) == "<answer>yes</answer><|im_end|>"
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits[0]
        yes, no = yes_no_token_ids(tok)
        at = int(keep.nonzero()[0])  # the <answer> token; its logits predict the answer word
        margin = float(logits[at, yes] - logits[at, no])
        score = float(score_batch(model, encode_pairs(processor, [clip], ["a red square"]))[0])
    assert margin == pytest.approx(score, abs=1e-5)
    with pytest.raises(ValueError, match="non-empty"):
        answer_target(" ")


def test_conversations_label_every_answer_and_one_turn_equals_a_target_example(backbone):
    _, processor = backbone
    tok = processor.tokenizer
    clips = [square((255, 0, 0)), solid((0, 0, 255))]
    question = lambda text: [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]  # noqa: E731
    one = [question("red?") + [{"role": "assistant", "content": "<answer>yes</answer>"}]] * 2
    a = encode_conversations(processor, clips, one)
    b = encode_target_examples(processor, clips, [question("red?")] * 2, ["<answer>yes</answer>"] * 2)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])

    turns = question("red?") + [{"role": "assistant", "content": "<answer>yes</answer>"},
                                {"role": "user", "content": [{"type": "text", "text": "square colour?"}]},
                                {"role": "assistant", "content": "<answer>red</answer>"}]
    batch = encode_conversations(processor, clips[:1] * 2, [turns, one[0]])
    labels = batch["labels"][0]
    assert tok.decode(labels[labels != IGNORE_INDEX]) == "<answer>yes</answer><|im_end|><answer>red</answer><|im_end|>"
    # The follow-up question itself is not a label, and the row still ends with the last answer.
    text = tok.decode(batch["input_ids"][0])
    assert text.endswith("<|im_start|>user\nsquare colour?<|im_end|>\n<|im_start|>assistant\n<answer>red</answer><|im_end|>")
    with pytest.raises(ValueError, match="end with an assistant turn"):
        encode_conversations(processor, clips[:1], [question("red?")])


def test_encode_rejects_mismatched_inputs(backbone):
    _, processor = backbone
    with pytest.raises(ValueError, match="2 clips but 1 queries"):
        encode_pairs(processor, [solid((1, 2, 3))] * 2, ["q"])
    with pytest.raises(ValueError):
        encode_caption_examples(processor, [solid((1, 2, 3))], [" "])


def test_load_backbone_offline_and_hub_passthrough(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        load_backbone(tmp_path / "missing")
    import transformers

    seen = {}

    def fake(kind):
        def from_pretrained(src, **kwargs):
            seen[kind] = (src, kwargs)
            raise RuntimeError("stop")

        return from_pretrained

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", fake("processor"))
    with pytest.raises(RuntimeError, match="stop"):
        load_backbone("Qwen/Qwen3-VL-8B-Instruct", trust_remote_code=True)
    assert seen["processor"] == ("Qwen/Qwen3-VL-8B-Instruct", {"trust_remote_code": True})


def test_forward_timing_batch4_8frames(backbone):
    model, processor = backbone
    clips = [square((60 * i, 0, 255 - 60 * i), frames=8) for i in range(4)]
    t0 = time.perf_counter()
    batch = encode_pairs(processor, clips, ["a red square"] * 4)
    encode_s = time.perf_counter() - t0
    with torch.no_grad():
        score_batch(model, batch)  # warm-up
        t0 = time.perf_counter()
        for _ in range(5):
            score_batch(model, batch)
        forward_s = (time.perf_counter() - t0) / 5
    print(f"\nencode 4x8 frames {encode_s * 1e3:.1f} ms, forward {forward_s * 1e3:.1f} ms, seq {batch['input_ids'].shape[1]}")
    assert forward_s < 2.0  # generous: catches an accidental huge config, not machine speed


def test_yes_no_pathway_learns_an_easy_label(built):
    """20 AdamW steps of BCE on the score, label = "is the frame red".

    Measured (2 CPU cores, seed 0): loss 0.71 -> 0.016 over 20 steps (below
    0.6 from step 2), mean score red +4.2 vs blue -4.2, held-out clips of
    other shades likewise; about 1 s.
    """
    torch.manual_seed(0)
    model, processor = load_backbone(built[0])
    model.train()
    rng = np.random.default_rng(0)
    clips, labels = [], []
    for i in range(8):
        red = i % 2 == 0
        base = np.array([210, 30, 30]) if red else np.array([30, 30, 210])
        clips.append(solid((base + rng.integers(-25, 26, 3)).clip(0, 255)))
        labels.append(float(red))
    y = torch.tensor(labels)
    batch = encode_pairs(processor, clips, ["is the frame red"] * 8)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    t0 = time.perf_counter()
    for _ in range(20):
        s = score_batch(model, batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(s, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        s = score_batch(model, batch)
        held = score_batch(
            model, encode_pairs(processor, [solid((240, 10, 60)), solid((60, 10, 240))], ["is the frame red"] * 2)
        )
    red, blue = s[y == 1].mean().item(), s[y == 0].mean().item()
    print(
        f"\nlearning check: loss {losses[0]:.3f} -> {losses[-1]:.3f} (min {min(losses):.3f}), "
        f"mean score red {red:.2f} vs blue {blue:.2f}, held-out red {held[0]:.2f} blue {held[1]:.2f}, {train_s:.1f} s"
    )
    assert losses[-1] < 0.6
    assert red > blue
    assert held[0] > held[1]


def test_vision_tower_gets_its_own_learning_rate(built):
    """`vision_lr_scale` puts the vision tower (and its mergers) in a param group at lr x scale;
    a frozen tower has no group; every trainable parameter is optimised exactly once."""
    from unittest.mock import MagicMock

    from rankvideo.modules import PerceptionSFTModule

    def groups(**kw):
        module = PerceptionSFTModule(model_path=str(built[0]), lr=1e-3, **kw)
        module.configure_model()
        module.trainer = MagicMock(estimated_stepping_batches=10)
        opt = module.configure_optimizers()["optimizer"]
        names = {id(p): n for n, p in module.named_parameters()}
        return module, [(g["lr"], [names[id(p)] for p in g["params"]]) for g in opt.param_groups]

    module, gs = groups(vision_lr_scale=0.02)
    assert [lr for lr, _ in gs] == pytest.approx([1e-3, 2e-5])
    assert gs[1][1] and all(".visual." in f".{n}" for n in gs[1][1])
    assert not any(".visual." in f".{n}" for n in gs[0][1])
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert sorted(gs[0][1] + gs[1][1]) == sorted(trainable)
    _, frozen = groups(freeze_vision=True)
    assert len(frozen) == 1 and frozen[0][0] == pytest.approx(1e-3)


def test_grown_language_model_scores_as_before_until_trained(built, backbone, tmp_path):
    """grow_language_model appends decoder layers whose output projections are zero: the grown
    model's score of a real (query, clip) pair is the original's, and only the new layers differ."""
    model, processor = backbone
    grown_dir = tiny.grow_language_model(built[0], tmp_path / "grown", 2, seed=3)
    grown, _ = load_backbone(grown_dir)
    n = model.config.text_config.num_hidden_layers
    assert grown.config.text_config.num_hidden_layers == n + 2 == len(grown.model.language_model.layers)
    new = dict(grown.model.language_model.layers[n].named_parameters())
    assert not new["self_attn.o_proj.weight"].any() and not new["mlp.down_proj.weight"].any()
    std = model.config.text_config.initializer_range
    assert new["self_attn.q_proj.weight"].std().item() == pytest.approx(std, rel=0.2)
    old = model.state_dict()
    assert all(torch.equal(v, old[k]) for k, v in grown.state_dict().items() if k in old)
    batch = encode_pairs(processor, [square((255, 0, 0)), solid((0, 0, 255))], ["a red square", "blue"])
    with torch.no_grad():
        assert torch.allclose(score_batch(grown, batch), score_batch(model, batch), atol=1e-6)
    with pytest.raises(ValueError, match="extra_layers must be >= 1"):
        tiny.grow_language_model(built[0], tmp_path / "none", 0)


def test_widened_vision_tower_scores_as_before_until_trained(built, backbone, tmp_path):
    """widen_vision_tower doubles the tower's width, heads and inner widths; without noise the
    widened model scores a real (query, clip) pair as the original does and the language model is
    untouched; with noise the copies differ (so training can separate them) and the score moves
    only a little."""
    model, processor = backbone
    v = model.config.vision_config
    exact, _ = load_backbone(tiny.widen_vision_tower(built[0], tmp_path / "exact", 2, noise=0.0))
    noisy, _ = load_backbone(tiny.widen_vision_tower(built[0], tmp_path / "noisy", 2, noise=1e-3, seed=1))
    w = exact.config.vision_config
    assert (w.hidden_size, w.intermediate_size, w.num_heads) == (2 * v.hidden_size, 2 * v.intermediate_size,
                                                                  2 * v.num_heads)
    assert w.out_hidden_size == v.out_hidden_size and w.depth == v.depth
    assert exact.model.visual.merger.linear_fc1.weight.shape == (8 * v.hidden_size, 8 * v.hidden_size)
    old = model.state_dict()
    lm = {k: t for k, t in exact.state_dict().items() if ".visual." not in f".{k}"}
    assert lm and all(torch.equal(t, old[k]) for k, t in lm.items())
    fc1 = exact.model.visual.blocks[0].mlp.linear_fc1.weight
    assert torch.equal(fc1[: v.intermediate_size], fc1[v.intermediate_size:])
    nfc1 = noisy.model.visual.blocks[0].mlp.linear_fc1.weight
    assert not torch.equal(nfc1[: v.intermediate_size], nfc1[v.intermediate_size:])
    batch = encode_pairs(processor, [square((255, 0, 0)), solid((0, 0, 255))], ["a red square", "blue"])
    with torch.no_grad():
        ref = score_batch(model, batch)
        assert torch.allclose(score_batch(exact, batch), ref, atol=1e-4)
        moved = (score_batch(noisy, batch) - ref).abs().max().item()
    assert 0 < moved < 0.05
    with pytest.raises(ValueError, match="factor must be an integer >= 2"):
        tiny.widen_vision_tower(built[0], tmp_path / "none", 1)
