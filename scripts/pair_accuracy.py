"""Which pairs of the first stage's head does a reranker order right, and which does it not?

For each query of a split, every pair of videos in the first stage's top `--depth` (15, what the
rerank stage reorders) whose graded judgments differ is one comparison; a run orders it right
when it scores the better-graded video higher (a tie counts one half; a video the run does not
score ranks last). Pairs are grouped by the two videos' classes on the embedded benchmark:

- `full`: grade 3 (the event and every fact of the query hold);
- `partial`: grade 1 or 2 (the event holds, the facts only in part);
- `0 kind`, `0 place`, `0 facts`: grade 0 because the video shows another kind of event, or
  another place, or the query's event with none of its facts (read from the video's ground truth).

    python scripts/pair_accuracy.py --runs artifacts/rerank_zeroshot/run.trec,artifacts/rerank/run.trec
    python scripts/pair_accuracy.py --runs artifacts/rerank/run.trec --by-type --splits val

Prints, per split, the share of pairs each run (and the first stage) orders right for each pair
class, with the number of pairs; `--by-type` splits every class by the query's main constraint
type (`qtype`: attribute, count, ocr, detail, ...). Needs `dvc repro` (the synthesize, retrieve
and rerank stages) first; the benchmark must be synthetic (its corpus records carry `truth`).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rankvideo.data.benchmark import Benchmark  # noqa: E402
from rankvideo.data.trec import iter_jsonl, rank_order, read_run  # noqa: E402

CLASSES = ("full > partial", "full > 0 facts", "full > 0 kind", "full > 0 place", "partial > 0 facts",
           "partial > 0 kind", "partial > 0 place")


def video_class(grade: int, truth: dict, kind: str, place: str | None) -> str:
    """`full`, `partial`, or why a grade-0 video is irrelevant to a query about (kind, place)."""
    if grade >= 3:
        return "full"
    if grade > 0:
        return "partial"
    if truth["kind"] != kind:
        return "0 kind"
    if place is not None and truth["place"] != place:
        return "0 place"
    return "0 facts"


def pair_accuracy(runs: dict[str, dict], first: dict, qrels: dict, truth: dict, spec: dict, depth: int,
                  by_type: bool = False) -> dict[str, dict[str, list[float]]]:
    """run name -> pair class (with ` / qtype` under `by_type`) -> one 0, 1/2 or 1 per pair.
    `spec`: qid -> (kind, place, qtype) of the query."""
    out: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in runs}
    for qid, judged in qrels.items():
        kind, place, qtype = spec[qid]
        head = rank_order(first.get(qid, {}))[:depth]
        grades = {d: judged.get(d, 0) for d in head}
        classes = {d: video_class(grades[d], truth[d], kind, place) for d in head}
        for a, b in combinations(head, 2):
            if grades[a] == grades[b] or (0 < grades[a] < 3 and 0 < grades[b] < 3):
                continue  # same grade, or two partial matches (1 vs 2): no class of their own
            hi, lo = (a, b) if grades[a] > grades[b] else (b, a)
            key = f"{classes[hi]} > {classes[lo]}" + (f" / {qtype}" if by_type else "")
            for name, run in runs.items():
                scores = run.get(qid, {})
                s_hi, s_lo = scores.get(hi, float("-inf")), scores.get(lo, float("-inf"))
                out[name][key].append(1.0 if s_hi > s_lo else 0.5 if s_hi == s_lo else 0.0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default=str(ROOT / "artifacts" / "benchmark"))
    ap.add_argument("--run", default=str(ROOT / "artifacts" / "retrieve" / "run.trec"), help="the first stage's run")
    ap.add_argument("--runs", required=True, help="reranked runs over the same head, comma-separated")
    ap.add_argument("--depth", type=int, default=15)
    ap.add_argument("--splits", default="val,test")
    ap.add_argument("--by-type", action="store_true", help="split each pair class by the query's type")
    args = ap.parse_args(argv)
    if args.depth < 2:
        ap.error(f"--depth must be >= 2, got {args.depth}")
    bench = Benchmark(args.benchmark)
    truth = {d.doc_id: d.truth for d in bench.corpus()}
    missing = [d for d, t in truth.items() if not t]
    if missing:
        sys.exit(f"{args.benchmark}/corpus.jsonl: video {missing[0]} has no ground truth ('truth'): "
                 "pair classes need the embedded synthetic benchmark")
    rows = [row for _, row in iter_jsonl(Path(args.benchmark) / "queries.jsonl", ("qid", "kind", "place"), "a query")]
    spec = {row["qid"]: (row["kind"], row["place"], row.get("qtype") or "-") for row in rows}
    first = read_run(args.run)
    paths = args.runs.split(",")
    names = [Path(p).parent.name or p for p in paths]
    names = [n if names.count(n) == 1 else p for n, p in zip(names, paths)]  # two rerank/run.trec: full paths
    runs = {"first stage": first, **{n: read_run(p) for n, p in zip(names, paths)}}
    for split in args.splits.split(","):
        qrels = bench.qrels(split)
        unknown = sorted(set(qrels) - set(spec))
        if unknown:
            sys.exit(f"{args.benchmark}/queries.jsonl: no record of query {unknown[0]} (qrels_{split}.trec)")
        acc = pair_accuracy(runs, first, qrels, truth, spec, args.depth, by_type=args.by_type)
        keys = sorted({k for table in acc.values() for k in table},
                      key=lambda k: (CLASSES.index(k.split(" / ")[0]), k))
        print(f"[{split}] {len(qrels)} queries, first-stage top {args.depth}: share of pairs ordered right")
        print("| pairs | n | " + " | ".join(runs) + " |")
        print("|---|---|" + "---|" * len(runs))
        for k in keys:
            n = len(acc["first stage"][k])
            print(f"| {k} | {n} | " + " | ".join(f"{sum(acc[r][k]) / n:.3f}" for r in runs) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
