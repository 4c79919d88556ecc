"""Memory and speed of the paper's backbone shape on a GPU, without its weights.

Builds Qwen3-VL at the shape of Qwen3-VL-8B-Instruct (36 decoder layers of width 4096, a 27-layer
vision tower, DeepStack at 8/16/24, the real 151,936-token vocabulary) with random bf16 weights
directly on the GPU, so nothing is downloaded; the tokenizer and processor come from a tiny model
built locally with the 8B's vision patch (16 px). Then, through the project's own code paths
(`encode_pairs`, `score_batch`, `stage2_loss_batch`, `apply_peft` with conf/peft/lora.yaml):

- stage-2 training steps: one query group (1 positive + 2 negatives), 24 frames per clip, LoRA,
  gradient checkpointing, AdamW, bf16: seconds per step and peak GPU memory;
- scoring: 32 frames per clip, batches of 1 and 4 pairs, seconds per pair;
- scoring one video shared by 4 queries (`--queries-per-video`), pair by pair in one batch vs
  grouped by video (`score_queries_for_video`: preprocessed and vision-encoded once): pairs/s of
  each, the speed-up, and the largest score difference between the two paths.

Frames are 512x512, i.e. 256 visual tokens per pair of frames (128 per frame, the paper's figure).
Random weights give the same FLOPs and memory as the trained ones, not meaningful scores.

    python scripts/bench_backbone.py                 # the 8B shape (GPU)
    python scripts/bench_backbone.py --shape smoke   # 2 small layers: checks the script on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SHAPES = {
    # Qwen3-VL-8B-Instruct's published config.json (text_config / vision_config).
    "8b": dict(text=dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, vocab_size=151936),
               vision=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                           deepstack_visual_indexes=[8, 16, 24])),
    "smoke": dict(text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=32, vocab_size=4096),
                  vision=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128,
                              deepstack_visual_indexes=[0])),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--side", type=int, default=512, help="frame side in pixels (512: 128 visual tokens per frame)")
    ap.add_argument("--train-frames", type=int, default=24)
    ap.add_argument("--infer-frames", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up step)")
    ap.add_argument("--queries-per-video", type=int, default=4,
                    help="queries sharing one video in the grouped vs ungrouped scoring comparison")
    ap.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()

    from omegaconf import OmegaConf
    from transformers import AutoConfig, AutoModelForImageTextToText

    from rankvideo.data.video import Clip
    from rankvideo.losses import Stage2LossConfig, stage2_loss_batch
    from rankvideo.models.grouped import score_queries_for_video
    from rankvideo.models.scoring import encode_pairs, score_batch, yes_no_token_ids
    from rankvideo.models.tiny import build_tiny_qwen3_vl, load_processor
    from rankvideo.modules.peft_setup import apply_peft

    repo = Path(__file__).resolve().parents[1]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = SHAPES[args.shape]
    tmp = Path(tempfile.mkdtemp())
    corpus = ["find the clip of a flood in Lisbon with a red circle moving left to right"] * 30
    build_tiny_qwen3_vl(tmp / "tiny", corpus=corpus, patch_size=16)
    proc = load_processor(tmp / "tiny")
    # The tiny processor's pixel budget is sized for 96-px frames: lift it for the real frame size.
    for p in (proc.video_processor,):
        p.size = {"shortest_edge": 2 * 32 * 32, "longest_edge": max(args.train_frames, args.infer_frames) * args.side ** 2}
        p.max_video_tokens = (args.side // 32) ** 2  # merged tokens per pair of frames
    config = AutoConfig.from_pretrained(tmp / "tiny")
    for k, v in shape["text"].items():
        setattr(config.text_config, k, v)
    for k, v in shape["vision"].items():
        setattr(config.vision_config, k, v)
    config.vision_config.num_position_embeddings = (args.side // 16) ** 2
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t = time.perf_counter()
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    build_s = time.perf_counter() - t
    model._rankvideo_yes_no_ids = yes_no_token_ids(proc.tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    lora = OmegaConf.load(repo / "conf" / "peft" / "lora.yaml")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = apply_peft(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rng = np.random.default_rng(0)

    def clip(frames: int, name: str) -> Clip:
        return Clip(rng.integers(0, 255, (frames, args.side, args.side, 3), dtype=np.uint8),
                    np.arange(frames) / 2.0, frames / 2.0, name)

    query = "Find the clip of a flood in Lisbon with a red circle moving left to right"
    group = [clip(args.train_frames, f"v{i}") for i in range(3)]
    batch = encode_pairs(proc, group, [query] * 3)
    seq_len = int(batch["input_ids"].shape[1])
    visual = int((batch["input_ids"] == model.config.video_token_id).sum() // 3) if hasattr(model.config, "video_token_id") else None
    batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
    paper = OmegaConf.to_container(OmegaConf.load(repo / "conf" / "loss" / "paper.yaml"))
    loss_cfg = Stage2LossConfig.from_mapping({k: v for k, v in paper.items() if k != "name"})
    kwargs = loss_cfg.as_kwargs()
    labels = torch.tensor([[1.0, 0.0, 0.0]], device=device)
    teacher = torch.tensor([[0.9, 0.2, -1.0]], device=device)
    mask = torch.ones(1, 3, dtype=torch.bool, device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            scores = score_batch(model, batch).view(1, 3).float()
        loss = stage2_loss_batch(scores, labels, teacher, mask, **kwargs)["total"]
        loss.backward()
        opt.step()
        return float(loss.detach())

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    step()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    losses = [step() for _ in range(args.steps)]
    sync()
    step_s = (time.perf_counter() - t) / args.steps
    train_peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None

    model.eval()
    infer = {}
    for bs in (1, 4):
        clips = [clip(args.infer_frames, f"i{i}") for i in range(bs)]
        b = encode_pairs(proc, clips, [query] * bs)
        b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()}
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            score_batch(model, b)
            sync()
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            for _ in range(3):
                score_batch(model, b)
            sync()
        infer[bs] = {"s_per_pair": (time.perf_counter() - t) / (3 * bs),
                     "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None}

    # One video shared by several queries, as in reranking (a video is a candidate of many
    # queries): per pair (preprocess and vision-encode the video for every pair, one batch) vs
    # grouped by video (preprocess and encode it once). Wall time includes preprocessing.
    n_q = args.queries_per_video
    shared = clip(args.infer_frames, "shared")
    queries = [f"{query} ({i})" for i in range(n_q)]

    def per_pair() -> list[float]:
        b = encode_pairs(proc, [shared] * n_q, queries)
        b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()}
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            return score_batch(model, b).float().tolist()

    def grouped() -> list[float]:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            return score_queries_for_video(model, proc, shared, queries, batch_size=n_q)

    sharing = {}
    for name, fn in (("per_pair", per_pair), ("grouped", grouped)):
        fn()
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(3):
            scores = fn()
        sync()
        dt = (time.perf_counter() - t) / 3
        sharing[name] = {"pairs_per_s": n_q / dt, "s_per_pair": dt / n_q, "scores": scores,
                         "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None}
    sharing["speedup"] = sharing["grouped"]["pairs_per_s"] / sharing["per_pair"]["pairs_per_s"]
    sharing["max_abs_score_diff"] = float(np.max(np.abs(np.array(sharing["grouped"]["scores"])
                                                        - np.array(sharing["per_pair"]["scores"]))))

    result = {
        "shape": args.shape, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "params_b": n_params / 1e9, "lora_trainable_m": trainable / 1e6, "build_s": build_s,
        "train": {"frames": args.train_frames, "side": args.side, "pairs_per_step": 3, "seq_len": seq_len,
                  "visual_tokens_per_pair": visual, "s_per_step": step_s, "peak_gib": train_peak, "losses": losses},
        "score": {"frames": args.infer_frames, **{f"batch{k}": v for k, v in infer.items()}},
        "shared_video": {"queries": n_q, "frames": args.infer_frames, **sharing},
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
