"""Negative mining and query filters of the paper's data synthesis (section 3, items 3 and 5).

Per training query the candidates are its positives (grade >= 3) and its first-stage grade-0
candidates, each with the teacher margin d = logit(yes) - logit(no) and the teacher's answer.
The rules, applied in this order; a query is dropped by the first one it fails, and each drop is
counted under that rule's name (`DROP_REASONS`):

1. `no_positive`: the query has no positive at all.
2. `positive_not_in_first_stage`: paper, item 3: "drop queries whose positive is not in the
   first-stage top 1000" (`first_stage_depth`). A query with several positives keeps those inside
   the top k (the others are dropped as pairs) and is dropped only when none is.
3. `teacher_misclassified_positive`: paper, item 3: "drop pairs the teacher misclassifies from the
   captions". A positive the teacher says "no" to is dropped as a pair (the caption evidence does
   not support it, so the teacher's label would teach the opposite of the qrels); the query goes
   when no positive is left.
4. Negatives by teacher margin, paper item 5, literally:
   - trusted negative: the teacher says no AND d <= `trusted_max` (paper: -6): kept;
   - suspected positive: the teacher says yes AND d > `suspect_min` (paper: -8): dropped (an
     unjudged relevant video, or a teacher error: either way not a safe negative);
   - everything else: kept as a hard negative (teacher says no with -6 < d, or, possible only when
     the written answer and the margin disagree, says yes with d <= -8).
   When the teacher's answer is simply d > 0 (MiniLM, or an LLM read without reasoning), the
   suspect rule reduces to "says yes" for any suspect_min <= 0, and trusted_max < 0 keeps
   "trusted" a subset of "says no". `no_negative`: no negative survives.
5. `negative_outscores_positive`: paper, item 3: "drop queries whose top hard negative scores more
   than 2x the positive in the first stage" (`max_neg_pos_ratio`). Compared: the best first-stage
   score among the kept negatives (trusted + hard; suspected positives are already out and never
   become training negatives) against the best first-stage score among the kept positives. A ratio
   is only meaningful for positive scores, so the rule is skipped (and counted as
   `ratio_undefined`) when the positive's score is <= 0 or unknown.
6. `no_trusted_negative`: paper, item 5: "at least one trusted negative per query". With
   `fallback_trusted`, a query without one keeps its most negative-margin hard negative, promoted
   to trusted, and is counted in `fallback_queries` (logged) instead of being dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

__all__ = [
    "DROP_REASONS",
    "ROLES",
    "Candidate",
    "MiningConfig",
    "QueryMining",
    "mine",
    "mine_query",
]

ROLES = ("positive", "trusted", "hard")
DROP_REASONS = (
    "no_positive",
    "positive_not_in_first_stage",
    "teacher_misclassified_positive",
    "no_negative",
    "negative_outscores_positive",
    "no_trusted_negative",
)


@dataclass(frozen=True)
class Candidate:
    """One (query, video) pair as mining sees it."""

    doc_id: str
    label: int  # 1: positive (qrels grade >= positive_min_grade), 0: negative (grade 0 / unjudged)
    margin: float  # teacher d = logit(yes) - logit(no)
    says_yes: bool | None = None  # the teacher's written answer; None: d > 0
    first_stage_rank: int | None = None  # 1-based; None: not in the first-stage list at all
    first_stage_score: float | None = None

    @property
    def yes(self) -> bool:
        return bool(self.margin > 0) if self.says_yes is None else bool(self.says_yes)


@dataclass(frozen=True)
class MiningConfig:
    trusted_max: float = -6.0
    suspect_min: float = -8.0
    first_stage_depth: int = 1000
    max_neg_pos_ratio: float | None = 2.0  # None disables the first-stage ratio filter
    drop_misclassified_positives: bool = True
    fallback_trusted: bool = False

    @classmethod
    def from_cfg(cls, node: Mapping) -> "MiningConfig":
        """From the `teacher.mining` config node (missing keys take the paper's defaults)."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(node) - known
        if unknown:
            raise ValueError(f"teacher.mining: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(node)
        ratio = kw.get("max_neg_pos_ratio", 2.0)
        kw["max_neg_pos_ratio"] = None if ratio is None else float(ratio)
        for k in ("trusted_max", "suspect_min"):
            if k in kw:
                kw[k] = float(kw[k])
        if "first_stage_depth" in kw:
            kw["first_stage_depth"] = int(kw["first_stage_depth"])
        return cls(**kw)


@dataclass
class QueryMining:
    """The outcome for one query: kept pairs with their roles, or why the query was dropped."""

    qid: str
    kept: bool
    reason: str | None = None  # one of DROP_REASONS when not kept
    roles: dict[str, str] = field(default_factory=dict)  # doc_id -> role, kept queries only
    dropped_pairs: dict[str, str] = field(default_factory=dict)  # doc_id -> why
    fallback: bool = False
    ratio_undefined: bool = False


def _negative_role(c: Candidate, cfg: MiningConfig) -> str:
    if not c.yes and c.margin <= cfg.trusted_max:
        return "trusted"
    if c.yes and c.margin > cfg.suspect_min:
        return "suspected_positive"
    return "hard"


def mine_query(qid: str, candidates: Iterable[Candidate], cfg: MiningConfig) -> QueryMining:
    cands = list(candidates)
    seen: set[str] = set()
    for c in cands:
        if c.doc_id in seen:
            raise ValueError(f"query {qid!r}: candidate {c.doc_id!r} appears twice")
        seen.add(c.doc_id)
    out = QueryMining(qid=qid, kept=False)

    positives = [c for c in cands if c.label > 0]
    if not positives:
        out.reason = "no_positive"
        return out
    in_top = [c for c in positives if c.first_stage_rank is not None and c.first_stage_rank <= cfg.first_stage_depth]
    for c in positives:
        if c not in in_top:
            out.dropped_pairs[c.doc_id] = "positive_not_in_first_stage"
    if not in_top:
        out.reason = "positive_not_in_first_stage"
        return out
    positives = in_top
    if cfg.drop_misclassified_positives:
        for c in positives:
            if not c.yes:
                out.dropped_pairs[c.doc_id] = "teacher_misclassified_positive"
        positives = [c for c in positives if c.yes]
        if not positives:
            out.reason = "teacher_misclassified_positive"
            return out

    roles: dict[str, str] = {c.doc_id: "positive" for c in positives}
    negatives = []
    for c in cands:
        if c.label > 0:
            continue
        role = _negative_role(c, cfg)
        if role == "suspected_positive":
            out.dropped_pairs[c.doc_id] = role
        else:
            roles[c.doc_id] = role
            negatives.append(c)
    if not negatives:
        out.reason = "no_negative"
        return out

    if cfg.max_neg_pos_ratio is not None:
        pos_scores = [c.first_stage_score for c in positives if c.first_stage_score is not None]
        neg_scores = [c.first_stage_score for c in negatives if c.first_stage_score is not None]
        best_pos = max(pos_scores) if pos_scores else None
        if best_pos is None or best_pos <= 0:
            out.ratio_undefined = True
        elif neg_scores and max(neg_scores) > cfg.max_neg_pos_ratio * best_pos:
            out.reason = "negative_outscores_positive"
            return out

    if not any(r == "trusted" for r in roles.values()):
        if not cfg.fallback_trusted:
            out.reason = "no_trusted_negative"
            return out
        # Most negative margin = the negative the teacher is surest about; ties by doc id so the
        # choice never depends on candidate order.
        pick = min(negatives, key=lambda c: (c.margin, c.doc_id))
        roles[pick.doc_id] = "trusted"
        out.fallback = True
        log.info("query %s: no trusted negative (d <= %g); fallback keeps %s (d = %.3f) as trusted",
                 qid, cfg.trusted_max, pick.doc_id, pick.margin)

    out.kept = True
    out.roles = roles
    return out


def mine(candidates: Mapping[str, Iterable[Candidate]], cfg: MiningConfig) -> tuple[dict[str, QueryMining], dict]:
    """Mine every query; returns per-query outcomes and the counts `metrics.json` reports."""
    results = {qid: mine_query(qid, cands, cfg) for qid, cands in candidates.items()}
    roles = Counter(r for m in results.values() for r in m.roles.values())
    dropped_pairs = Counter(why for m in results.values() if m.kept for why in m.dropped_pairs.values())
    reasons = Counter(m.reason for m in results.values() if not m.kept)
    kept = [m for m in results.values() if m.kept]
    counts = {
        "queries_in": len(results),
        "queries_kept": len(kept),
        "queries_dropped": {r: reasons.get(r, 0) for r in DROP_REASONS},
        "pairs": {r: roles.get(r, 0) for r in ROLES},
        # Pairs dropped inside queries that were kept (the pairs of dropped queries all go).
        "pairs_dropped": {k: dropped_pairs.get(k, 0) for k in
                          ("positive_not_in_first_stage", "teacher_misclassified_positive", "suspected_positive")},
        "fallback_queries": sum(m.fallback for m in results.values()),
        "ratio_undefined_queries": sum(m.ratio_undefined for m in results.values()),
    }
    if counts["fallback_queries"]:
        log.warning("mining: %d queries kept through the trusted-negative fallback", counts["fallback_queries"])
    dropped = {r: n for r, n in counts["queries_dropped"].items() if n}
    log.info("mining: kept %d of %d queries (dropped: %s); pairs %s", len(kept), len(results), dropped or "none", counts["pairs"])
    return results, counts
