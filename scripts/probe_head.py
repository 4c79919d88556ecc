"""Does a backbone recognise the query's event in the first stage's head, and in which wording?

Scores every (query, video) pair of the first stage's top `--depth` for the first `--queries`
queries of a split, with the paper's reranking prompt, under several wordings of the query:

- bench: the benchmark's own query text (what the rerank stage scores);
- kind:  only the query's kind of event, as a search phrase ("a flood");
- event: its event as a search phrase ("Clip of the flood in Valencia"; the kind alone when the
         query names no place).

and prints, per backbone and wording, nDCG@10 of the head reordered by those scores (the tail
kept, as the rerank stage writes it) and the mean per-query AUC of the scores for the query's event
(kind and place) and its kind against the other head videos. A backbone that separates the event
with `kind` or `event` but not with `bench` loses it in the wording of the query, not in the frames.

    python scripts/probe_head.py --model pretrained/tiny_qwen3_vl
    python scripts/probe_head.py --model pretrained/tiny_qwen3_vl,artifacts/stage2/model --queries 120

Needs `dvc repro` (or the synthesize and retrieve stages) first. Videos are read as the rerank
stage reads them (2 fps, at most 32 frames) and each is encoded once per backbone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from rankvideo.data.benchmark import Benchmark  # noqa: E402
from rankvideo.data.trec import iter_jsonl, rank_order, read_run  # noqa: E402
from rankvideo.data.video import read_clip  # noqa: E402
from rankvideo.eval import evaluate  # noqa: E402
from rankvideo.models.grouped import score_queries_for_video  # noqa: E402
from rankvideo.models.rerank import merge_head_and_tail  # noqa: E402
from rankvideo.models.tiny import load_backbone  # noqa: E402
from rankvideo.utils.io import progress  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from oracle_rerank import head_aucs  # noqa: E402


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


WORDINGS = {
    "bench": lambda q, row: q.text,
    "kind": lambda q, row: _a(row["kind"]),
    "event": lambda q, row: f"Clip of the {row['kind']} in {row['place']}" if row["place"] else f"Clip of {_a(row['kind'])}",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="backbone folders, comma-separated")
    ap.add_argument("--benchmark", default=str(ROOT / "artifacts" / "benchmark"))
    ap.add_argument("--run", default=str(ROOT / "artifacts" / "retrieve" / "run.trec"), help="first-stage TREC run")
    ap.add_argument("--split", default="test")
    ap.add_argument("--queries", type=int, default=40, help="the split's first N queries")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--wordings", default=",".join(WORDINGS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    wordings = args.wordings.split(",")
    bad = set(wordings) - set(WORDINGS)
    if bad:
        ap.error(f"unknown wordings {sorted(bad)}; choose from {list(WORDINGS)}")
    bench = Benchmark(args.benchmark)
    docs = {d.doc_id: d for d in bench.corpus()}
    rows = {r["qid"]: r for _, r in iter_jsonl(Path(args.benchmark) / "queries.jsonl", ("qid", "kind", "place"), "a query")}
    first = read_run(args.run)
    queries = [q for q in bench.queries(args.split) if q.qid in first][: args.queries]
    qids = [q.qid for q in queries]
    # Judged on the queries scored here only (the others would count as 0).
    qrels = {q: j for q, j in bench.qrels(args.split).items() if q in set(qids)}
    heads = {q.qid: rank_order(first[q.qid])[: args.depth] for q in queries}
    by_video: dict[str, list] = {}
    for q in queries:
        for d in heads[q.qid]:
            by_video.setdefault(d, []).append(q)
    clips = {d: read_clip(bench.video_path(docs[d]), fps=2.0, max_frames=32) for d in by_video}

    def kind(q, d):
        return docs[d].truth["kind"] == rows[q]["kind"]

    def event(q, d):
        return kind(q, d) and docs[d].truth["place"] == rows[q]["place"]

    base = evaluate({q: first[q] for q in qids}, qrels, measures=("nDCG@10",)).mean["nDCG@10"]
    print(f"[{args.split}] {len(queries)} queries, {sum(len(v) for v in by_video.values())} pairs; "
          f"first stage nDCG@10 {base:.4f}")
    for path in args.model.split(","):
        model, processor = load_backbone(path)
        t0 = time.time()
        scores = {w: {q: {} for q in qids} for w in wordings}
        bar = progress(len(by_video), f"score {Path(path).name}", "video")
        for d, qs in by_video.items():
            texts = [WORDINGS[w](q, rows[q.qid]) for w in wordings for q in qs]
            values = iter(score_queries_for_video(model, processor, clips[d], texts, batch_size=64))
            for w in wordings:
                for q in qs:
                    scores[w][q.qid][d] = next(values)
            bar.update(1)
        bar.close()
        print(f"== {path} ({time.time() - t0:.0f} s)")
        for w in wordings:
            auc = head_aucs(scores[w], heads, kind, event)
            run = merge_head_and_tail({q: first[q] for q in qids}, scores[w], args.depth)
            ndcg = evaluate(run, qrels, measures=("nDCG@10",)).mean["nDCG@10"]
            print(f"  {w:6s} nDCG@10 {ndcg:.4f} ({100 * (ndcg / base - 1):+.1f}%)  "
                  f"AUC event {statistics.fmean(auc['event']):.3f} ({len(auc['event'])} queries)  "
                  f"kind {statistics.fmean(auc['kind']):.3f} ({len(auc['kind'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
