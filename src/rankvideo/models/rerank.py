"""Reranking a first-stage run with a video reranker (paper section 5: the top `depth` candidates
are rescored, the rest of the first-stage list follows untouched).

Work is grouped by video: each candidate video is decoded and vision-encoded once, then scored
against every query that retrieved it. Scores are appended to a JSONL progress file, one line per
completed video and flushed, so an interrupted run resumes where it stopped (completed videos are
not scored again); the run file itself is written atomically at the end. When a run finishes, its
journal is rewritten to hold exactly the plan's pairs (`VideoScoringRun.write_journal`), so the
folder is what a fresh one-process run writes, whatever was scored before or by how many ranks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ..data.trec import Run, rank_order
from ..utils.io import progress
from ..utils.journal import append, open_journal, read_journal, rewrite

log = logging.getLogger(__name__)


def rerank_plan(first_stage: Run, queries: Mapping[str, str], depth: int) -> dict[str, list[str]]:
    """doc_id -> qids whose first-stage top `depth` contains it (only queries in `queries`)."""
    by_video: dict[str, list[str]] = {}
    for qid in sorted(queries):
        for doc in rank_order(first_stage.get(qid, {}))[:depth]:
            by_video.setdefault(doc, []).append(qid)
    return by_video


def shard_progress_file(progress_file: Path, rank: int, world: int) -> Path:
    """Where rank `rank` of `world` appends its completed videos (one process: `progress_file`)."""
    return progress_file if world == 1 else progress_file.with_name(f"{progress_file.stem}.rank{rank}{progress_file.suffix}")


def pair_key(query_text: str, video: str = "") -> str:
    """What decides one pair's score besides the run-level fingerprint (model, scoring settings):
    the query's text and the video (its identity, e.g. path and size). A stored score is reused
    only under the same key."""
    return hashlib.sha256(json.dumps([query_text, video]).encode()).hexdigest()[:16]


def read_progress(progress_file: Path, fingerprint: str, skipped: dict[str, str] | None = None
                  ) -> dict[str, dict[str, tuple[float, str]]]:
    """Scored pairs of earlier (or other ranks') runs with the same fingerprint, from
    `progress_file` and its per-rank siblings, whatever the number of ranks that wrote them:
    doc_id -> {qid: (score, pair key)}, later records overriding earlier ones. Files of another
    configuration are ignored. Only complete records count (`rankvideo.utils.journal`): a cut or
    damaged line is left out and logged, so its pairs are scored again. Videos recorded as skipped
    are not done (a resumed run tries them again); they go into `skipped`."""
    done: dict[str, dict[str, tuple[float, str]]] = {}
    files = sorted(progress_file.parent.glob(f"{progress_file.stem}*{progress_file.suffix}")) if progress_file.parent.is_dir() else []
    for path in files:
        records = read_journal(path, fingerprint)
        for lineno, row in records or ():
            doc = row.get("doc_id")
            if not isinstance(doc, str):
                log.warning("%s line %d: a record without its doc_id; ignored", path, lineno)
                continue
            if "skipped" in row:
                if skipped is not None:
                    skipped[doc] = row["skipped"]
                continue
            keys = row.get("keys", {})
            entry = done.setdefault(doc, {})
            for qid, score in row.get("scores", {}).items():
                entry[qid] = (float(score), keys.get(qid, ""))
            if skipped is not None:
                skipped.pop(doc, None)
    return done


class VideoScoringRun:
    """The bookkeeping of one reranking run on one rank: which videos are its share (every
    `world`-th video of the sorted plan, from `rank`), which of their pairs are already scored
    under the same pair key (in any rank's progress file), and `score_one(doc)`, which scores the
    video's missing or changed pairs and appends them to this rank's progress file (flushed, so an
    interruption loses at most the video in flight).

    `key(doc, qid)` is each pair's key (default: `pair_key` of the query text); a stored score
    under another key (the query text or the video changed) is scored again ("rescored")."""

    def __init__(self, plan: Mapping[str, list[str]], queries: Mapping[str, str],
                 score_video: Callable[[str, list[str]], list[float]], *, progress_file: Path, fingerprint: str,
                 skip: Callable[[str], str | None] | None = None, rank: int = 0, world: int = 1,
                 key: Callable[[str, str], str] | None = None):
        self.plan, self.queries, self.score_video, self.skip = plan, queries, score_video, skip
        self.key = key or (lambda doc, qid: pair_key(queries[qid]))
        self.progress_file, self.fingerprint = Path(progress_file), fingerprint
        self.rank, self.world = rank, world
        self.done = read_progress(self.progress_file, fingerprint)
        share = [d for i, d in enumerate(sorted(plan)) if i % world == rank]
        self.need: dict[str, list[str]] = {}
        resumed = rescored = 0
        for d in share:
            stored = self.done.get(d, {})
            need = []
            for q in plan[d]:
                if q in stored and stored[q][1] == self.key(d, q):
                    resumed += 1
                else:
                    rescored += q in stored
                    need.append(q)
            if need:
                self.need[d] = need
        self.todo = [d for d in share if d in self.need]
        self.stats = {"videos": len(plan), "videos_resumed": sum(1 for d in share if d not in self.need),
                      "pairs_resumed": resumed, "pairs_rescored": rescored, "pairs_scored": 0,
                      "videos_skipped": 0, "skipped": {}, "seconds": None, "pairs_per_s": None}
        self._out = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> "VideoScoringRun":
        mine = shard_progress_file(self.progress_file, self.rank, self.world)
        if self.stats["pairs_resumed"]:
            log.info("resuming: %d pairs already scored (%d videos complete), %d to score again because their query or "
                     "video changed (%s)", self.stats["pairs_resumed"], self.stats["videos_resumed"],
                     self.stats["pairs_rescored"], mine)
        self._out = open_journal(mine, self.fingerprint)
        self._bar = progress(sum(len(self.need[d]) for d in self.todo),
                             "rerank" if self.world == 1 else f"rerank (rank {self.rank} of {self.world})", "pair")
        self._t0 = time.perf_counter()
        return self

    def score_one(self, doc: str, *, skip_reason: str | None = None) -> None:
        """Score `doc`'s pairs, or record it as skipped with `skip_reason` (when the caller read
        the video) or the reason `skip(doc)` gives."""
        qids = self.need.get(doc, self.plan[doc])
        reason = skip_reason if skip_reason is not None else (self.skip(doc) if self.skip else None)
        if reason:
            self.stats["videos_skipped"] += 1
            self.stats["skipped"][doc] = reason
            log.warning("skipping video %s (%d pairs): %s", doc, len(qids), reason)
            append(self._out, {"doc_id": doc, "skipped": reason})  # for the merge's count
        else:
            scores = self.score_video(doc, [self.queries[q] for q in qids])
            row = {qid: float(s) for qid, s in zip(qids, scores)}
            keys = {qid: self.key(doc, qid) for qid in qids}
            append(self._out, {"doc_id": doc, "scores": row, "keys": keys})
            entry = self.done.setdefault(doc, {})
            entry.update({q: (row[q], keys[q]) for q in qids})
            self.stats["pairs_scored"] += len(qids)
        self._bar.update(len(qids))
        self._bar.set_postfix(pairs_per_s=f"{self.stats['pairs_scored'] / max(time.perf_counter() - self._t0, 1e-9):.1f}",
                              refresh=False)

    def __exit__(self, *exc) -> None:
        if self._out is None or self._out.closed:  # closed already (or never opened)
            return
        self._bar.close()
        self._out.close()
        seconds = time.perf_counter() - self._t0
        self.stats["seconds"] = round(seconds, 2)
        self.stats["pairs_per_s"] = round(self.stats["pairs_scored"] / seconds, 2) if seconds else None

    def write_journal(self, done: Mapping[str, Mapping[str, tuple[float, str]]] | None = None,
                      skipped: Mapping[str, str] | None = None) -> None:
        """Replace the progress file (and remove the per-rank ones) by the journal a fresh
        one-process run of this plan writes: one record per video in sorted order, holding the
        plan's pairs scored under their current key (the pairs `scores_by_query` returns; a video
        without any, but in `skipped`, as its skip record).
        Pairs of other plans (a deeper head, an earlier query text) and duplicates are dropped.
        `done` is every rank's scored pairs (default: those this rank knows). Call it once the
        whole plan is scored, on one process."""
        done = self.done if done is None else done
        skipped = self.stats["skipped"] if skipped is None else skipped

        def records():
            for doc in sorted(self.plan):
                stored = done.get(doc, {})
                current = {q: stored[q] for q in self.plan[doc] if q in stored and stored[q][1] == self.key(doc, q)}
                if current:
                    yield {"doc_id": doc, "scores": {q: v[0] for q, v in current.items()},
                           "keys": {q: v[1] for q, v in current.items()}}
                elif doc in skipped:
                    yield {"doc_id": doc, "skipped": skipped[doc]}

        rewrite(self.progress_file, self.fingerprint, records())
        for rank_file in self.progress_file.parent.glob(f"{self.progress_file.stem}.rank*{self.progress_file.suffix}"):
            rank_file.unlink()

    def scores_by_query(self, done: Mapping[str, Mapping[str, tuple[float, str]]] | None = None) -> dict[str, dict[str, float]]:
        """qid -> {doc: score} of the plan's pairs scored under their current key (default: the
        pairs this rank knows)."""
        done = self.done if done is None else done
        by_query: dict[str, dict[str, float]] = {}
        for doc in sorted(done):
            if doc not in self.plan:
                continue
            for qid in self.plan[doc]:
                got = done[doc].get(qid)
                if got is not None and got[1] == self.key(doc, qid):
                    by_query.setdefault(qid, {})[doc] = got[0]
        return by_query


def score_run(plan: Mapping[str, list[str]], queries: Mapping[str, str],
              score_video: Callable[[str, list[str]], list[float]], *, progress_file: Path,
              fingerprint: str, skip: Callable[[str], str | None] | None = None) -> tuple[dict[str, dict[str, float]], dict]:
    """Score every (query, video) pair of `plan` in this process, video by video. `score_video(doc_id,
    texts)` returns one score per text. `skip(doc_id)` may return a reason to skip a video (e.g. it
    cannot be decoded): its pairs are left out, counted and logged, never silently scored.
    (Across GPUs and nodes: `rankvideo.modules.predict`, the same bookkeeping per rank.)"""
    with VideoScoringRun(plan, queries, score_video, progress_file=progress_file, fingerprint=fingerprint, skip=skip) as run:
        for doc in run.todo:
            run.score_one(doc)
    run.write_journal()
    return run.scores_by_query(), run.stats


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
