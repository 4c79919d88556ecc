"""Reranking speed with and without the shared prompt prefix, side by side in one run.

Scores `--queries` benchmark queries against each of the first `--videos` benchmark videos with
`score_queries_for_video` (one vision pass per video, queries in chunks of `--batch-size`, as the
rerank stage does), once reading every pair whole and once reading the shared prefix (system
prompt and video) once per chunk. The two paths alternate video by video so that load on the
machine falls on both alike. Prints pairs per second of each, the speed-up, and the largest score
difference between them.

    python scripts/bench_shared_prefix.py                           # the shipped tiny backbone
    python scripts/bench_shared_prefix.py --model artifacts/stage2/model --videos 40

Needs the benchmark (`dvc repro synthesize`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from rankvideo.data.benchmark import Benchmark  # noqa: E402
from rankvideo.data.video import read_clip  # noqa: E402
from rankvideo.models.grouped import score_queries_for_video  # noqa: E402
from rankvideo.models.tiny import load_backbone  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "pretrained" / "tiny_qwen3_vl"))
    ap.add_argument("--benchmark", default=str(ROOT / "artifacts" / "benchmark"))
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--queries", type=int, default=32, help="queries scored against every video")
    ap.add_argument("--batch-size", type=int, default=32, help="queries per language-model pass (rerank.batch_size)")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--max-frames", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    bench_dir = Path(args.benchmark)
    if not (bench_dir / "queries.jsonl").exists():
        sys.exit(f"{bench_dir}: no benchmark there; run `dvc repro synthesize` first")
    torch.set_num_threads(args.threads)
    bench = Benchmark(bench_dir)
    queries = [q.text for q in bench.queries("test")][: args.queries]
    docs = list(bench.corpus())[: args.videos]
    model, processor = load_backbone(args.model)
    model.eval()

    seconds = {False: 0.0, True: 0.0}
    worst = 0.0
    for doc in docs:
        clip = read_clip(bench.video_path(doc), fps=args.fps, max_frames=args.max_frames)
        got = {}
        for share in (False, True):
            t0 = time.perf_counter()
            got[share] = score_queries_for_video(model, processor, clip, queries, batch_size=args.batch_size,
                                                 share_prefix=share)
            seconds[share] += time.perf_counter() - t0
        worst = max(worst, max(abs(a - b) for a, b in zip(got[False], got[True])))
    pairs = len(docs) * len(queries)
    whole, shared = pairs / seconds[False], pairs / seconds[True]
    print(f"{args.model}: {len(docs)} videos x {len(queries)} queries, batch {args.batch_size}, "
          f"{args.threads} threads")
    print(f"  every pair whole   {whole:8.1f} pairs/s")
    print(f"  shared prefix      {shared:8.1f} pairs/s   ({shared / whole:.2f}x)")
    print(f"  largest score difference {worst:.2e}")


if __name__ == "__main__":
    main()
