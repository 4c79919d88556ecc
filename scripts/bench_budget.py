"""Visual tokens per frame pair and scoring speed, with and without the official visual budget.

For a 1280x720 and a 640x360 clip (synthetic textured frames at 2 fps), scores (query, clip) pairs
with the shipped tiny backbone (pretrained/tiny_qwen3_vl) through the project's own path
(`encode_pairs` + `score_batch`), side by side in one run, once per budget:

- none: frames as decoded; the tiny processor resizes them by its own rule;
- official: frames fit once to the official inference's budget (128 * 32 * 32 pixels per frame,
  32 frames' worth per clip, factor 32); the processor leaves them as they are.

Per row it prints the frame size the model sees, the processor's video grid, the visual tokens per
frame pair on the tiny backbone (one per 16 x 16 pixels) and what Qwen3-VL (one per 32 x 32) would
receive at that size, the time to fit the clip (done once per clip when decoding), and pairs/s of
encoding + scoring (median of --repeats timed batches after one warm-up batch). Weights are the
tiny model's, so the speeds say how the budget moves the cost, not what an 8B model costs.

    python scripts/bench_budget.py
    python scripts/bench_budget.py --frames 8 --batch 2 --repeats 1   # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rankvideo.data.video import Clip  # noqa: E402
from rankvideo.data.visual_budget import VisualBudget, fit_clip, processor_factor, tokens_per_frame_pair  # noqa: E402
from rankvideo.models.scoring import encode_pairs, score_batch  # noqa: E402
from rankvideo.models.tiny import load_backbone  # noqa: E402

OFFICIAL = VisualBudget(min_pixels=128 * 32 * 32, max_pixels=128 * 32 * 32, total_pixels=32 * 128 * 32 * 32, factor=32)
QWEN3_VL_FACTOR = 32
SIZES = [(720, 1280), (360, 640)]
QUERIES = ["a red square moves to the left", "a blue circle bounces on the floor", "is the frame red",
           "two green triangles spin slowly"]


def synthetic_clip(frames: int, height: int, width: int) -> Clip:
    """Textured frames (smooth gradients plus noise, so resizing has detail to work on) at 2 fps."""
    rng = np.random.default_rng(height * width)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    f = np.stack([(base + rng.integers(0, 32, base.shape) + 8 * t) % 256 for t in range(frames)]).astype(np.uint8)
    return Clip(frames=f, timestamps=np.arange(frames) / 2.0, native_fps=2.0, path=f"synthetic_{width}x{height}")


def pairs_per_s(model, processor, clip: Clip, batch: int, repeats: int) -> tuple[float, object]:
    """Median pairs/s of encode_pairs + score_batch on `batch` pairs of `clip`; and the last encoding."""
    queries = [QUERIES[i % len(QUERIES)] for i in range(batch)]
    times = []
    enc = None
    for i in range(repeats + 1):  # the first batch warms up and is not timed
        t0 = time.perf_counter()
        enc = encode_pairs(processor, [clip] * batch, queries)
        with torch.no_grad():
            score_batch(model, enc)
        if i:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times), enc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "pretrained" / "tiny_qwen3_vl"), help="a tiny backbone folder")
    ap.add_argument("--frames", type=int, default=32, help="frames per clip (the paper's inference: 32)")
    ap.add_argument("--batch", type=int, default=4, help="pairs per forward pass")
    ap.add_argument("--repeats", type=int, default=3, help="timed batches per row")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, processor = load_backbone(args.model)
    model.eval()
    tiny_factor = processor_factor(processor.video_processor)
    patch = int(processor.video_processor.patch_size)
    print(f"backbone {args.model} (factor {tiny_factor}); {args.frames} frames per clip, batches of {args.batch} "
          f"pairs, median of {args.repeats}; torch threads {torch.get_num_threads()}")
    header = (f"{'clip':>9} {'budget':>8} {'model sees':>10} {'grid t,h,w':>12} {'tok/pair tiny':>13} "
              f"{'tok/pair Qwen3-VL':>17} {'fit ms':>7} {'pairs/s':>8}")
    print(header)
    print("-" * len(header))
    for height, width in SIZES:
        raw = synthetic_clip(args.frames, height, width)
        for name, budget in (("none", None), ("official", OFFICIAL)):
            t0 = time.perf_counter()
            clip = fit_clip(raw, budget)
            fit_ms = (time.perf_counter() - t0) * 1e3
            rate, enc = pairs_per_s(model, processor, clip, args.batch, args.repeats)
            t, gh, gw = (int(v) for v in enc["video_grid_thw"][0])
            h, w = gh * patch, gw * patch  # the frame size the vision tower received
            qwen3 = tokens_per_frame_pair(h, w, QWEN3_VL_FACTOR) if h % QWEN3_VL_FACTOR == 0 and w % QWEN3_VL_FACTOR == 0 else "-"
            print(f"{width}x{height:<4} {name:>8} {f'{w}x{h}':>10} {f'{t},{gh},{gw}':>12} "
                  f"{tokens_per_frame_pair(h, w, tiny_factor):>13} {qwen3!s:>17} {fit_ms:>7.1f} {rate:>8.2f}")


if __name__ == "__main__":
    main()
