"""Reranking a first-stage run with a video reranker (paper section 5: the top `depth` candidates
are rescored, the rest of the first-stage list follows untouched).

Work is grouped by video: each candidate video is decoded and vision-encoded once, then scored
against every query that retrieved it. Scores are appended to a JSONL progress file, one line per
completed video and flushed, so an interrupted run resumes where it stopped (completed videos are
not scored again); the run file itself is written atomically at the end.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path


from ..data.trec import Run, rank_order
from ..utils.io import progress

log = logging.getLogger(__name__)


def rerank_plan(first_stage: Run, queries: Mapping[str, str], depth: int) -> dict[str, list[str]]:
    """doc_id -> qids whose first-stage top `depth` contains it (only queries in `queries`)."""
    by_video: dict[str, list[str]] = {}
    for qid in sorted(queries):
        for doc in rank_order(first_stage.get(qid, {}))[:depth]:
            by_video.setdefault(doc, []).append(qid)
    return by_video


def _read_progress(path: Path, fingerprint: str) -> dict[str, dict[str, float]]:
    """Completed videos of an interrupted run with the same fingerprint; anything else is ignored."""
    done: dict[str, dict[str, float]] = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or json.loads(lines[0]).get("fingerprint") != fingerprint:
        log.info("progress file %s belongs to another run configuration: starting over", path)
        return {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by the interruption: that video is scored again
        done[row["doc_id"]] = row["scores"]
    return done


def score_run(plan: Mapping[str, list[str]], queries: Mapping[str, str],
              score_video: Callable[[str, list[str]], list[float]], *, progress_file: Path,
              fingerprint: str, skip: Callable[[str], str | None] | None = None) -> tuple[dict[str, dict[str, float]], dict]:
    """Score every (query, video) pair of `plan`, video by video. `score_video(doc_id, texts)`
    returns one score per text. `skip(doc_id)` may return a reason to skip a video (e.g. it cannot
    be decoded): its pairs are left out, counted and logged, never silently scored."""
    progress_file.parent.mkdir(parents=True, exist_ok=True)
    done = _read_progress(progress_file, fingerprint)
    if done:
        log.info("resuming: %d of %d videos already scored (%s)", len(done), len(plan), progress_file)
    else:
        progress_file.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    todo = [d for d in sorted(plan) if d not in done]
    pairs_total = sum(len(plan[d]) for d in todo)
    stats = {"videos": len(plan), "videos_resumed": len(done), "pairs_scored": 0, "videos_skipped": 0, "skipped": {}}
    t0 = time.perf_counter()
    with open(progress_file, "a", encoding="utf-8") as out, progress(pairs_total, "rerank", "pair") as bar:
        for doc in todo:
            qids = plan[doc]
            reason = skip(doc) if skip else None
            if reason:
                stats["videos_skipped"] += 1
                stats["skipped"][doc] = reason
                log.warning("skipping video %s (%d pairs): %s", doc, len(qids), reason)
                bar.update(len(qids))
                continue
            scores = score_video(doc, [queries[q] for q in qids])
            row = {qid: float(s) for qid, s in zip(qids, scores)}
            out.write(json.dumps({"doc_id": doc, "scores": row}) + "\n")
            out.flush()
            done[doc] = row
            stats["pairs_scored"] += len(qids)
            bar.update(len(qids))
            bar.set_postfix(pairs_per_s=f"{stats['pairs_scored'] / max(time.perf_counter() - t0, 1e-9):.1f}")
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    stats["pairs_per_s"] = round(stats["pairs_scored"] / stats["seconds"], 2) if stats["seconds"] else None
    by_query: dict[str, dict[str, float]] = {}
    for doc, row in done.items():
        if doc in plan:
            for qid, s in row.items():
                by_query.setdefault(qid, {})[doc] = s
    return by_query, stats


def merge_head_and_tail(first_stage: Run, reranked: Mapping[str, Mapping[str, float]], depth: int) -> Run:
    """The reranked head (ordered by reranker score, ties by first-stage score, then doc id), then
    the first-stage tail in its own order, as one run with strictly decreasing scores."""
    out: Run = {}
    for qid, cands in first_stage.items():
        order = rank_order(cands)
        head, tail = order[:depth], order[depth:]
        scored = reranked.get(qid, {})
        # A head video that could not be scored keeps its place after the scored ones, in
        # first-stage order (logged by score_run): it is never given an invented score.
        head_scored = rank_order({d: scored[d] for d in head if d in scored}, tiebreak=cands)
        head_unscored = [d for d in head if d not in scored]
        final = head_scored + head_unscored + tail
        n = len(final)
        out[qid] = {d: float(n - i) for i, d in enumerate(final)}
    return out
