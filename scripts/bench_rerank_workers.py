"""Reranking pairs/s with videos decoded in the main process (rerank.num_workers=0) and in
DataLoader workers beside the scoring (--workers, default 2), side by side in one run.

Reranks the first-stage top --depth of the --split queries with the model in --model (default:
the pipeline's `artifacts/model`, the backbone stage 1 starts from), on the benchmark and first
stage a `dvc repro` left in artifacts/, into temporary folders; prints seconds, pairs/s and
whether both runs are byte-identical.

    dvc repro build_model                                 # once: the benchmark, first stage and model
    python scripts/bench_rerank_workers.py                # test split, depth 20, 0 vs 2 workers
    python scripts/bench_rerank_workers.py --workers 4 --depth 100
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def rerank(workers: int, out: Path, args) -> tuple[float, dict]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rankvideo.stages import stage_fn

    overrides = ["tracking.enabled=false", f"paths.rerank_dir={out}", f"paths.reranked_run={out / 'run.trec'}",
                 f"rerank.checkpoint={args.model}", f"rerank.splits=[{args.split}]", f"rerank.depth={args.depth}",
                 f"rerank.num_workers={workers}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    OmegaConf.resolve(cfg)
    t0 = time.perf_counter()
    stage_fn("rerank")(cfg, source="bench")
    seconds = time.perf_counter() - t0
    return seconds, json.loads((out / "rerank_info.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the second run (default 2)")
    ap.add_argument("--split", default="test", help="queries to rerank (default test)")
    ap.add_argument("--depth", type=int, default=20, help="first-stage candidates per query (default 20)")
    ap.add_argument("--model", default=str(REPO / "artifacts" / "model"), help="model folder (default artifacts/model)")
    args = ap.parse_args()
    if not Path(args.model).is_dir():
        sys.exit(f"{args.model} is not there: run `dvc repro build_model` first (or pass --model)")
    logging.basicConfig(level=logging.WARNING)
    compare(args)


def compare(args) -> list[tuple[int, float, int]]:
    """Rerank with 0 and ``args.workers`` workers; prints the table and returns
    [(workers, seconds, pairs)] for both."""
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for workers in (0, args.workers):
            outs[workers] = Path(tmp) / f"w{workers}"
            seconds, info = rerank(workers, outs[workers], args)
            rows.append((workers, seconds, info["num_pairs"]))
        same = (outs[0] / "run.trec").read_bytes() == (outs[args.workers] / "run.trec").read_bytes()
    print(f"{args.split} split, depth {args.depth}, model {args.model}; torch threads {torch.get_num_threads()}")
    print(f"{'workers':>8} {'seconds':>9} {'pairs':>7} {'pairs/s':>8}")
    for workers, seconds, pairs in rows:
        print(f"{workers:>8} {seconds:>9.1f} {pairs:>7} {pairs / seconds:>8.1f}")
    print(f"speed-up {rows[0][1] / rows[1][1]:.2f}x; runs byte-identical: {same}")
    return rows


if __name__ == "__main__":
    main()
