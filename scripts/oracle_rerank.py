"""How much a frame-only reranker could gain on the embedded benchmark, from oracles.

Each oracle reorders the first stage's top `--depth` (100) of every query by what it knows from
the ground truth, keeping the first-stage order among equals, and appends the untouched tail, as
the reranker does:

- kind:   the video shows the query's kind of event (what the background texture tells);
- event:  kind and place both match (the landmark emblem, shown in 80% of clips, tells the place),
          even for queries that do not name the place: an upper bound for event recognition;
- colours: event first, then the share of the colours the query names (its objects' colours)
          that the video shows: what a reranker that only checks colours could reach;
- objects: event first, then the share of the query's named objects (colour and shape) present;
- qrels:  the graded judgment itself (the ceiling of any reranker of this head).

With `--reranked` (a reranker's run over the same head, e.g. artifacts/rerank/run.trec), also how
well its scores recognise the query's event: the mean over queries of the AUC of its head scores
for event vs other videos (and for kind alone), the share of event videos in its top 10 and the
first stage's, and the event oracle ordered by its scores within the event (event recognition
made perfect, everything else as the reranker has it).

    python scripts/oracle_rerank.py [--benchmark artifacts/benchmark] [--run artifacts/retrieve/run.trec]
    python scripts/oracle_rerank.py --reranked artifacts/rerank/run.trec

Prints nDCG@10 of the first stage and of each oracle per split. Needs `dvc repro` (or the
synthesize and retrieve stages) first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rankvideo.data.benchmark import Benchmark  # noqa: E402
import numpy as np  # noqa: E402

from rankvideo.data.trec import iter_jsonl, rank_order, read_run  # noqa: E402
from rankvideo.eval import evaluate  # noqa: E402
from rankvideo.eval.metrics import roc_auc  # noqa: E402
from rankvideo.models.rerank import merge_head_and_tail  # noqa: E402


def oracle_run(first, qids, depth, key):
    """The run the rerank stage would write if the reranker scored each head video `key(qid, doc)`:
    the top `depth` by that score (ties in first-stage order), then the first-stage tail."""
    first = {q: first.get(q, {}) for q in qids}
    scores = {q: {d: float(key(q, d)) for d in rank_order(first[q])[:depth]} for q in qids}
    return merge_head_and_tail(first, scores, depth)


def named_objects(constraints: list[dict]) -> list[tuple[str, str]]:
    """(colour, shape) of every object a query's constraints name (counts and words name none)."""
    return [(c[col], c[shape]) for c in constraints
            for shape, col in (("shape", "colour"), ("shape1", "colour1"), ("shape2", "colour2"))
            if c.get(shape) and c.get(col)]


def share_present(wanted: list, shown: set) -> float:
    return sum(w in shown for w in wanted) / len(wanted) if wanted else 0.0


def head_aucs(scores, heads, kind, event) -> dict[str, list[float]]:
    """Per query, the AUC of `scores[q][d]` over its head videos `heads[q]` for the query's event
    (`event(q, d)`) and its kind (`kind(q, d)`) against the other head videos; queries whose head
    lacks one class are left out. A head video without a score ranks last."""
    auc = {"event": [], "kind": []}
    for q, head in heads.items():
        values = np.array([scores.get(q, {}).get(d, -np.inf) for d in head], dtype=float)
        for name, key in (("event", event), ("kind", kind)):
            value = roc_auc(values, np.array([key(q, d) for d in head], dtype=bool))
            if value is not None:
                auc[name].append(value)
    return auc


def report_reranker(reranked, first, queries, qrels, depth, base, kind, event) -> None:
    """How a reranker's head scores separate the query's event (and kind) from the other videos."""
    auc = head_aucs(reranked, {q: rank_order(first.get(q, {}))[:depth] for q in queries}, kind, event)
    top = {"reranker": [], "first stage": []}
    for q in queries:
        for name, run in (("reranker", reranked), ("first stage", first)):
            top[name].append(sum(event(q, d) for d in rank_order(run.get(q, {}))[:10]) / 10)
    for name, values in auc.items():
        print(f"  reranker AUC, {name} vs other videos: {statistics.fmean(values):.3f} over {len(values)} queries")
    for name, values in top.items():
        print(f"  event videos in the top 10, {name}: {statistics.fmean(values):.3f}")

    def event_then_reranker(q, d):
        return 1e6 * event(q, d) + reranked.get(q, {}).get(d, -1e5)

    value = evaluate(oracle_run(first, queries, depth, event_then_reranker), qrels, measures=("nDCG@10",)).mean["nDCG@10"]
    print(f"  event oracle, reranker order within: {value:.4f}  ({100 * (value / base - 1):+.1f}%)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default=str(ROOT / "artifacts" / "benchmark"))
    ap.add_argument("--run", default=str(ROOT / "artifacts" / "retrieve" / "run.trec"))
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--splits", default="val,test")
    ap.add_argument("--reranked", default=None, help="a reranker's run over the same head: how it sees the event")
    args = ap.parse_args()
    bench = Benchmark(args.benchmark)
    truth = {d.doc_id: d.truth for d in bench.corpus()}
    # The generator's record of each query: its event's kind and place (the Query type keeps text only).
    rows = [row for _, row in iter_jsonl(Path(args.benchmark) / "queries.jsonl", ("qid", "kind", "place"), "a query")]
    events = {row["qid"]: (row["kind"], row["place"]) for row in rows}
    wanted = {row["qid"]: named_objects(row.get("constraints", [])) for row in rows}
    shown = {d: {(o["colour"], o["shape"]) for o in t["scene"]["objects"]} for d, t in truth.items()}
    first = read_run(args.run)
    for split in args.splits.split(","):
        qrels = bench.qrels(split)
        queries = {q.qid: q for q in bench.queries(split)}

        def kind(q, d):
            return truth[d]["kind"] == events[q][0]

        def event(q, d):
            return kind(q, d) and truth[d]["place"] == events[q][1]

        def colours(q, d):
            return 2 * event(q, d) + share_present([c for c, _ in wanted[q]], {c for c, _ in shown[d]})

        def objects(q, d):
            return 2 * event(q, d) + share_present(wanted[q], shown[d])

        def grade(q, d):
            return qrels.get(q, {}).get(d, 0)

        base = evaluate({q: first[q] for q in queries if q in first}, qrels, measures=("nDCG@10",)).mean["nDCG@10"]
        print(f"[{split}] {len(queries)} queries, first stage nDCG@10 {base:.4f}")
        for name, key in (("kind", kind), ("event", event), ("colours", colours), ("objects", objects), ("qrels", grade)):
            value = evaluate(oracle_run(first, queries, args.depth, key), qrels, measures=("nDCG@10",)).mean["nDCG@10"]
            print(f"  {name:7s} oracle  {value:.4f}  ({100 * (value / base - 1):+.1f}%)")
        if args.reranked:
            report_reranker(read_run(args.reranked), first, queries, qrels, args.depth, base, kind, event)
    return 0


if __name__ == "__main__":
    sys.exit(main())
