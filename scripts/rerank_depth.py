"""How deep should the reranker go? nDCG@10 of reranking the first stage's top k, for several k,
from the scores a reranking stage already wrote: no model runs.

A rerank stage scores every pair of the first stage's top `rerank.depth` and journals the scores in
`<rerank dir>/progress.jsonl`. Reranking only the top k (k <= that depth) keeps the first-stage
order below k; this script rebuilds that run for each k from the journal, as the rerank stage
merges head and tail, and prints per split nDCG@10, its change against the first stage and the
paired t-test's p.

    python scripts/rerank_depth.py                                   # the three dvc repro reranks
    python scripts/rerank_depth.py --rerank-dirs artifacts/rerank --depths 10,20,50 --splits val

Needs `dvc repro` (the rerank stages) first; depths up to the one the reranks scored
(`rerank.depth`; `dvc exp run -S rerank.depth=100` scores the paper's top 100).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rankvideo.data.benchmark import Benchmark  # noqa: E402
from rankvideo.data.trec import read_run  # noqa: E402
from rankvideo.eval import compare, evaluate  # noqa: E402
from rankvideo.models.rerank import merge_head_and_tail, read_progress  # noqa: E402

MEASURE = "nDCG@10"
DEFAULT_DEPTHS = (10, 15, 20, 30, 50, 100)


def journal_scores(rerank_dir: Path) -> tuple[dict[str, dict[str, float]], int]:
    """qid -> {doc_id: score} from a rerank stage's journal, and the depth the stage scored."""
    info_path, journal = rerank_dir / "rerank_info.json", rerank_dir / "progress.jsonl"
    for path in (info_path, journal):
        if not path.is_file():
            sys.exit(f"{path} does not exist: run the reranking first (dvc repro)")
    try:
        depth = json.loads(info_path.read_text()).get("rerank_depth")
    except (json.JSONDecodeError, AttributeError):
        depth = None
    if not isinstance(depth, int):
        sys.exit(f"{info_path}: not a JSON object with an integer rerank_depth")
    with journal.open() as f:
        line = f.readline()
    try:
        first = json.loads(line)
    except json.JSONDecodeError:
        first = None
    if not isinstance(first, dict) or "fingerprint" not in first:
        sys.exit(f"{journal} line 1: expected the run's fingerprint record, got {line.strip()[:80]!r}")
    scores: dict[str, dict[str, float]] = {}
    for doc, by_query in read_progress(journal, first["fingerprint"]).items():
        for qid, (score, _key) in by_query.items():
            scores.setdefault(qid, {})[doc] = score
    return scores, depth


def depth_table(first_q, base, scores, qrels, depths) -> list[tuple[int, float, float, float | None]]:
    """(k, nDCG@10, delta vs the first stage, paired p) for each k: the top k of the first-stage
    run `first_q` (its evaluation: `base`) reranked by `scores`."""
    rows = []
    for k in depths:
        res = evaluate(merge_head_and_tail(first_q, scores, k), qrels, tiebreak_run=first_q, measures=(MEASURE,))
        c = compare(res, base)[MEASURE]
        rows.append((k, c["system"], c["delta"], c["p_value"]))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="artifacts/benchmark")
    ap.add_argument("--run", default="artifacts/retrieve/run.trec", help="the first-stage run the reranks reordered")
    ap.add_argument("--rerank-dirs", default="artifacts/rerank_zeroshot,artifacts/rerank_stage1,artifacts/rerank")
    ap.add_argument("--depths", default=None,
                    help=f"comma-separated; default: those of {DEFAULT_DEPTHS} the reranks scored")
    ap.add_argument("--splits", default="val,test")
    args = ap.parse_args(argv)
    systems, scored = {}, {}
    for d in args.rerank_dirs.split(","):
        systems[d], scored[d] = journal_scores(Path(d))
    if args.depths is None:
        depths = [k for k in DEFAULT_DEPTHS if k <= min(scored.values())]
        if not depths:
            sys.exit(f"the reranks scored the top {min(scored.values())} only, below every default depth; give --depths")
    else:
        try:
            depths = sorted({int(k) for k in args.depths.split(",")})
        except ValueError:
            ap.error(f"--depths: comma-separated integers, got {args.depths!r}")
        if depths[0] < 1:
            ap.error("--depths: every depth must be >= 1")
        for d, k in scored.items():
            if depths[-1] > k:
                sys.exit(f"{d}: scored the top {k} only; depths above it ({depths[-1]}) need a deeper reranking")
    bench = Benchmark(args.benchmark)
    first = read_run(args.run)
    for split in args.splits.split(","):
        qids = sorted(q.qid for q in bench.queries(split))
        qrels = bench.qrels(split)
        first_q = {q: first[q] for q in qids if q in first}
        base = evaluate(first_q, qrels, measures=(MEASURE,))
        mean = base.mean[MEASURE]
        print(f"[{split}] {len(qids)} queries; first stage {MEASURE} {mean:.4f}")
        print("  " + " | ".join(["rerank dir", *[f"k={k}" for k in depths]]))
        for d, scores in systems.items():
            cells = [f"{v:.4f} ({100 * dv / mean:+.1f}%, p {p:.2g})" if p is not None else f"{v:.4f}"
                     for _k, v, dv, p in depth_table(first_q, base, scores, qrels, depths)]
            print("  " + " | ".join([d, *cells]))


if __name__ == "__main__":
    main()
