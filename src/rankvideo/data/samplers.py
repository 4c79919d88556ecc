"""Training examples of the two-stage curriculum (paper section 4).

- Stage 1 (perception SFT): one video per training query, its positive, with the teacher caption
  as target.
- Stage 2 (reranking): query groups of 1 positive + K negatives of the same query, negatives drawn
  from the query's own first-stage candidates (hard negatives), re-drawn every epoch from a seeded
  stream so that a run is reproducible and a resumed run sees the same groups. Each epoch draws
  afresh, so a negative drawn in one epoch can be drawn again in the next.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .benchmark import Query
from .trec import Qrels, Run, rank_order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryGroup:
    """One stage-2 mini-batch item: the positive first, then the negatives."""

    qid: str
    query: str
    doc_ids: tuple[str, ...]
    labels: tuple[int, ...]
    teacher: tuple[float, ...]  # teacher p_yes per pair; -1.0 where there is no teacher label


@dataclass(frozen=True)
class GroupSpec:
    num_negatives: int = 2  # K (paper: 2; official code default: 1)
    pool_depth: int = 100  # negatives come from the query's first-stage top pool_depth
    positive_min_grade: int = 3  # fully relevant only; partial matches (1-2) are neither
    negative_max_grade: int = 0
    # False: a group's K negatives are distinct, and a query with fewer than K is skipped.
    # True: the official sampler's rule (train_reranker.py, QueryGroupedBatchSampler): K distinct
    # negatives when the query has at least K, otherwise K draws with replacement (a negative may
    # repeat inside the group), so every query with at least one negative is kept. With K = 1 both
    # rules give the same groups.
    negatives_with_replacement: bool = False
    # > 0: a query's negatives are only its `teacher_hardest` kept negatives that the teacher scores
    # highest (p_yes; ties by doc id), drawn uniformly as before; 0: all of them.
    teacher_hardest: int = 0


class GroupSampler:
    """Deterministic query groups for stage 2: `groups(epoch)` depends only on (seed, epoch)."""

    def __init__(self, queries: Sequence[Query], qrels: Qrels, first_stage: Run, spec: GroupSpec, *, seed: int,
                 teacher: Mapping[tuple[str, str], float] | None = None,
                 allowed: Mapping[str, set[str]] | None = None):
        """`teacher`: p_yes per (qid, doc). `allowed`: the pairs the teacher's mining kept, per
        query (paper section 3: trusted and hard negatives, positives the teacher confirms);
        when given, queries it dropped are skipped and groups draw only from kept pairs."""
        if spec.num_negatives < 1:
            raise ValueError(f"stage2.num_negatives must be >= 1, got {spec.num_negatives}")
        if spec.teacher_hardest < 0:
            raise ValueError(f"stage2.teacher_hardest must be >= 0, got {spec.teacher_hardest}")
        if spec.teacher_hardest and not teacher:
            raise ValueError("stage2.teacher_hardest needs the teacher's labels (paths.teacher_labels)")
        self.spec, self.seed, self.teacher = spec, seed, dict(teacher or {})
        self.items: list[tuple[Query, list[str], list[str]]] = []
        skipped = {"dropped by the teacher's filters": 0, "no positive": 0, "too few negatives": 0}
        for q in queries:
            judged = qrels.get(q.qid, {})
            pos = sorted(d for d, g in judged.items() if g >= spec.positive_min_grade)
            pool = rank_order(first_stage.get(q.qid, {}))[: spec.pool_depth]
            neg = [d for d in pool if judged.get(d, 0) <= spec.negative_max_grade]
            if allowed is not None:
                if q.qid not in allowed:
                    skipped["dropped by the teacher's filters"] += 1
                    continue
                pos = [d for d in pos if d in allowed[q.qid]]
                neg = [d for d in neg if d in allowed[q.qid]]
            if spec.teacher_hardest:
                hardest = set(sorted(neg, key=lambda d: (-self.teacher.get((q.qid, d), -1.0), d))[: spec.teacher_hardest])
                neg = [d for d in neg if d in hardest]
            if not pos:
                skipped["no positive"] += 1
            elif len(neg) < (1 if spec.negatives_with_replacement else spec.num_negatives):
                skipped["too few negatives"] += 1
            else:
                self.items.append((q, pos, neg))
        for why, n in skipped.items():
            if n:
                log.warning("stage-2 groups: skipped %d of %d queries (%s)", n, len(queries), why)
        if not self.items:
            raise ValueError("stage-2 groups: no query has a positive and enough first-stage negatives")

    def __len__(self) -> int:
        return len(self.items)

    def groups(self, epoch: int) -> list[QueryGroup]:
        rng = np.random.default_rng([self.seed, epoch])
        out = []
        for q, pos, neg in self.items:
            p = pos[int(rng.integers(len(pos)))]
            # Only a pool smaller than K (kept only under negatives_with_replacement) is drawn with
            # replacement; every other draw is the same call, so the option leaves those groups as
            # they were.
            k = self.spec.num_negatives
            negs = [neg[int(i)] for i in rng.choice(len(neg), size=k, replace=len(neg) < k)]
            docs = (p, *negs)
            out.append(QueryGroup(
                qid=q.qid, query=q.text, doc_ids=docs, labels=(1,) + (0,) * len(negs),
                teacher=tuple(float(self.teacher.get((q.qid, d), -1.0)) for d in docs),
            ))
        order = rng.permutation(len(out))
        return [out[int(i)] for i in order]


def caption_targets(queries: Sequence[Query], qrels: Qrels, captions: Mapping[str, str], *,
                    positive_min_grade: int = 3) -> list[tuple[str, str]]:
    """Stage-1 examples: (doc_id, caption) of one positive video per query (the best-graded, ties
    by doc id), each video once. Videos without a caption are skipped with a warning."""
    seen: set[str] = set()
    out, missing = [], 0
    for q in queries:
        judged = qrels.get(q.qid, {})
        best = sorted((d for d, g in judged.items() if g >= positive_min_grade), key=lambda d: (-judged[d], d))
        if not best or best[0] in seen:
            continue
        doc = best[0]
        if not captions.get(doc):
            missing += 1
            continue
        seen.add(doc)
        out.append((doc, captions[doc]))
    if missing:
        log.warning("stage-1 examples: %d positive videos have no caption and were skipped", missing)
    return out
