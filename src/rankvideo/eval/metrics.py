"""Retrieval metrics with trec_eval's conventions, computed through ir-measures.

Conventions (every number this module reports follows them; they are also
listed in :data:`CONVENTIONS` and in :func:`to_json_dict`'s output):

* Ranking: score descending; ties broken by the tie-break run's score
  (officially the first-stage score) descending, then by doc id descending
  (string comparison), which is trec_eval's own rule. The run is handed to the
  evaluator through :func:`rankvideo.data.trec.strictly_ordered`, because
  ir-measures' backends disagree on ties: pytrec_eval (nDCG, R, P, RR) uses
  trec_eval's doc-id-descending rule, but RR@k has no pytrec_eval form and runs
  on ir-measures' MS MARCO backend, which orders ties by doc id *ascending*.
* Queries: every query with at least one judgment counts in the mean; a judged
  query absent from the run scores 0 on every measure (trec_eval ``-c``).
  ir-measures does this (its evaluator yields the measure's default, 0, for
  each judged query it did not score); we also fill the zeros in ourselves.
  Run queries without judgments are ignored (logged at INFO with a count).
  Note pytrec_eval alone would average over run queries only. With
  ``average="ranked"`` the mean is over the judged queries the run ranks that
  have at least one relevant (label >= 1) judgment instead: the official
  RankVideo ``evaluate.py``'s average (it reads the qrels without their
  label-0 lines and lets pytrec_eval average over the queries it scores).
* Gains: nDCG uses trec_eval's ``ndcg_cut``: gain = the label (linear, not
  2^rel - 1), labels <= 0 give no gain, discount log2(rank + 1), ideal ranking
  from all judged labels >= 1. ir-measures' default nDCG runs on pytrec_eval,
  i.e. exactly this. The relevance level does not affect nDCG (as in
  trec_eval, where ``-l`` leaves ndcg_cut unchanged).
* Relevance: for binary measures (R, RR, P, ...) a doc is relevant when its
  label >= ``relevance_level`` (default 1; trec_eval ``-l``).
* RR@k: reciprocal rank of the first relevant doc within the top k, else 0.
  trec_eval's ``recip_rank`` is RR without a cutoff (``RR`` here).

Verified against trec_eval's own regression outputs (tests/unit/eval).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import ir_measures
import numpy as np

from rankvideo.data.trec import Qrels, strictly_ordered

__all__ = [
    "AVERAGES",
    "DEFAULT_MEASURES",
    "CONVENTIONS",
    "EvalResult",
    "evaluate",
    "compare",
    "pooled_recall",
    "to_json_dict",
    "ndcg_curve",
    "format_table",
]

logger = logging.getLogger(__name__)

# Spelled exactly as str(ir_measures.parse_measure(name)) prints them.
DEFAULT_MEASURES: tuple[str, ...] = (
    "nDCG@5", "nDCG@10", "nDCG@20", "nDCG@50", "nDCG@100",
    "R@10", "R@20", "R@50", "R@100", "RR@10",
)

# How the mean runs over queries, per `average` (the second line of CONVENTIONS is the default's).
AVERAGES: dict[str, str] = {
    "all_judged": "queries: every judged query counts; judged query missing from run scores 0 (trec_eval -c)",
    "ranked": "queries: judged queries the run ranks, with a judgment >= 1, count; the others are left out "
              "(official RankVideo evaluate.py)",
}

CONVENTIONS: tuple[str, ...] = (
    "ranking: score desc, ties by tie-break run score desc, then doc id desc (trec_eval)",
    AVERAGES["all_judged"],
    "queries in the run without judgments are ignored",
    "nDCG: gain = label (linear, trec_eval ndcg_cut), labels <= 0 no gain, log2 discount",
    "RR@k: reciprocal rank of first relevant doc within top k, else 0",
)


@dataclass(frozen=True)
class EvalResult:
    """Mean and per-query values, keyed by measure name (ir-measures spelling).

    ``mean`` averages ``per_query`` over its ``num_queries`` queries: every
    judged query (``average="all_judged"``) or those the run ranks
    (``"ranked"``). ``relevance_level`` is the label threshold used for binary
    measures; ``unjudged_run_queries`` counts run queries ignored for lack of
    judgments.
    """

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    num_queries: int
    relevance_level: int = 1
    unjudged_run_queries: int = 0
    average: str = "all_judged"

    def conventions(self) -> list[str]:
        lines = [AVERAGES[self.average] if c == AVERAGES["all_judged"] else c for c in CONVENTIONS]
        return [*lines, f"relevant for binary measures (R, RR, P): label >= {self.relevance_level}"]


def _resolve_measures(measures: Iterable[str | ir_measures.Measure],
                      relevance_level: int) -> dict[str, ir_measures.Measure]:
    """Map each requested name to the measure actually computed.

    The name keeps the caller's (normalised) spelling, e.g. ``R@10``, even when
    a non-default relevance level is applied to it, so result keys stay stable.
    An explicit ``rel=`` in the request wins over ``relevance_level``.
    """
    out: dict[str, ir_measures.Measure] = {}
    for m in measures:
        parsed = ir_measures.parse_measure(m) if isinstance(m, str) else m
        name = str(parsed)
        actual = parsed
        if "rel" in parsed.SUPPORTED_PARAMS and "rel" not in parsed.params and relevance_level != 1:
            actual = parsed(rel=relevance_level)
        out[name] = actual
    return out


def _measure_groups(measures: list, ordered: Mapping[str, Mapping[str, float]]):
    """(measures, run) pairs to compute. RR@k sees only each query's top k (what it reads), as its
    MS MARCO backend spends its time ordering the whole ranking in Python; every other measure
    sees the whole run."""
    rr = [m for m in measures if m.NAME == "RR" and m.params.get("cutoff")]
    rest = [m for m in measures if m not in rr]
    groups = [(rest, ordered)] if rest else []
    if rr:
        depth = max(int(m.params["cutoff"]) for m in rr)
        top = {q: dict(sorted(docs.items(), key=lambda kv: kv[1], reverse=True)[:depth]) for q, docs in ordered.items()}
        groups.append((rr, top))
    return groups


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
             measures: Sequence[str | ir_measures.Measure] = DEFAULT_MEASURES,
             tiebreak_run: Mapping[str, Mapping[str, float]] | None = None,
             relevance_level: int = 1, average: str = "all_judged") -> EvalResult:
    """Evaluate ``run`` against ``qrels`` with the conventions in the module docstring.

    ``tiebreak_run`` orders equal scores (officially the first-stage run).
    ``relevance_level`` is trec_eval's ``-l``: the minimum label counted as
    relevant by binary measures; it does not change nDCG. ``average``:
    ``"all_judged"`` (trec_eval ``-c``: a judged query the run misses scores
    0) or ``"ranked"`` (the mean over the judged queries the run ranks that
    have a label >= 1, as the official RankVideo evaluate.py averages).
    """
    if relevance_level < 1:
        # Level <= 0 would count non-relevant (label 0) docs as relevant.
        raise ValueError(f"relevance_level must be >= 1, got {relevance_level}")
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
    resolved = _resolve_measures(measures, relevance_level)
    if not resolved:
        raise ValueError("no measures requested")

    # A query with an empty judgment set has no judgments: it cannot be scored.
    judged: Qrels = {str(q): {str(d): int(r) for d, r in docs.items()}
                     for q, docs in qrels.items() if docs}
    if not judged:
        raise ValueError("qrels contain no judged queries")

    unjudged = [q for q in run if q not in judged]
    if unjudged:
        logger.info("ignoring %d run queries without judgments (e.g. %s)",
                    len(unjudged), ", ".join(map(repr, unjudged[:3])))
    # Empty rankings are dropped: they score 0 like absent queries, and some
    # backends reject empty per-query dicts.
    ordered = strictly_ordered({q: docs for q, docs in run.items() if q in judged and docs},
                               tiebreak_run)

    # Two requested names can resolve to one measure (e.g. "R@10" at level 2 and
    # "R(rel=2)@10"), so each computed measure fans out to all its names.
    by_measure: dict[ir_measures.Measure, list[str]] = {}
    for name, m in resolved.items():
        by_measure.setdefault(m, []).append(name)
    names = tuple(resolved)
    raw: dict[str, dict[str, float]] = {q: {} for q in judged}
    for group, group_run in _measure_groups(list(by_measure), ordered):
        for metric in ir_measures.iter_calc(group, judged, group_run):
            if metric.query_id in raw:
                for name in by_measure[metric.measure]:
                    raw[metric.query_id][name] = float(metric.value)
    # A judged query with no ranking scores 0 (trec_eval -c); ir-measures
    # already yields 0 for it, the default here only makes that explicit.
    per_query = {q: {name: raw[q].get(name, 0.0) for name in names} for q in judged}
    if average == "ranked":
        # The official evaluate.py drops label <= 0 lines from the qrels, so a query judged only
        # non-relevant is not in its qrels; pytrec_eval then averages over the run's queries.
        per_query = {q: v for q, v in per_query.items() if q in ordered and any(r >= 1 for r in judged[q].values())}
        if not per_query:
            raise ValueError("average='ranked': the run ranks no query with a relevant judgment")

    n = len(per_query)
    mean = {name: math.fsum(v[name] for v in per_query.values()) / n for name in names}
    return EvalResult(mean=mean, per_query=per_query, num_queries=n,
                      relevance_level=relevance_level, unjudged_run_queries=len(unjudged), average=average)


def pooled_recall(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int,
                  tiebreak_run: Mapping[str, Mapping[str, float]] | None = None,
                  relevance_level: int = 1) -> float:
    """Share of all relevant (query, doc) pairs that appear in their query's top k, pooled over
    queries (R@k averages per query instead). This is "how many of the relevant videos reach a
    reranker that looks at the top k", the number that bounds what reranking can recover."""
    ordered = strictly_ordered(run, tiebreak_run)
    found = total = 0
    for q, docs in qrels.items():
        rel = {d for d, r in docs.items() if r >= relevance_level}
        if not rel:
            continue
        ranking = ordered.get(q, {})
        top = set(sorted(ranking, key=ranking.__getitem__, reverse=True)[:k])
        found += len(rel & top)
        total += len(rel)
    if total == 0:
        raise ValueError("pooled_recall: the qrels hold no relevant document")
    return found / total


def _paired_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value; None when undefined (fewer than 2 pairs)."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diffs) == 0 or np.all(diffs == 0):
        # Identical systems: scipy would return NaN (0/0); no evidence of a difference.
        return 1.0
    if len(diffs) < 2:
        return None
    from scipy import stats  # imported here: a second of start-up that only significance tests need

    p = float(stats.ttest_rel(a, b).pvalue)
    return None if math.isnan(p) else p


def compare(result_a: EvalResult, result_b: EvalResult,
            measures: Iterable[str] | None = None) -> dict[str, dict]:
    """Compare system ``result_a`` against baseline ``result_b``, per measure.

    For each measure: baseline and system means (each over its own judged
    queries), delta = a - b, delta_pct = 100 (a - b) / b (None if b == 0),
    p_value of a two-sided paired t-test over the queries both results cover
    (1.0 when all differences are 0, None with fewer than 2 pairs), and n,
    the number of paired queries.
    """
    if measures is None:
        measures = [m for m in result_a.mean if m in result_b.mean]
    out: dict[str, dict] = {}
    for m in measures:
        if m not in result_a.mean or m not in result_b.mean:
            raise KeyError(f"measure {m!r} missing from one of the results")
        mean_a, mean_b = result_a.mean[m], result_b.mean[m]
        qids = [q for q in result_a.per_query
                if m in result_a.per_query[q] and m in result_b.per_query.get(q, {})]
        a = [result_a.per_query[q][m] for q in qids]
        b = [result_b.per_query[q][m] for q in qids]
        out[m] = {
            "baseline": mean_b,
            "system": mean_a,
            "delta": mean_a - mean_b,
            "delta_pct": None if mean_b == 0 else 100.0 * (mean_a - mean_b) / mean_b,
            "p_value": _paired_p(a, b),
            "n": len(qids),
        }
    return out


def ndcg_curve(result: EvalResult) -> list[dict]:
    """``[{"k": k, "nDCG": mean}]`` for every plain nDCG@k in ``result``, by k."""
    points = []
    for name, value in result.mean.items():
        m = ir_measures.parse_measure(name)
        if m.NAME == "nDCG" and set(m.params) == {"cutoff"}:
            points.append({"k": int(m.params["cutoff"]), "nDCG": value})
    return sorted(points, key=lambda p: p["k"])


def to_json_dict(result: EvalResult, comparison: Mapping[str, dict] | None = None) -> dict:
    """A JSON-ready dict: measure names -> mean, plus per_query, num_queries,
    conventions, and ``compare`` when a comparison is given."""
    out: dict = dict(result.mean)
    out["per_query"] = {q: dict(v) for q, v in result.per_query.items()}
    out["num_queries"] = result.num_queries
    out["conventions"] = result.conventions()
    if comparison is not None:
        out["compare"] = {m: dict(v) for m, v in comparison.items()}
    return out


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def format_table(result: EvalResult, comparison: Mapping[str, dict] | None = None) -> str:
    """An aligned text table: measure and value; with a comparison also the
    baseline, delta, delta % and paired t-test p-value."""
    if comparison is None:
        header = ["measure", "value"]
        rows = [[m, _fmt(v)] for m, v in result.mean.items()]
    else:
        header = ["measure", "system", "baseline", "delta", "delta %", "p", "n"]
        rows = []
        for m, v in result.mean.items():
            c = comparison.get(m)
            if c is None:
                rows.append([m, _fmt(v), "", "", "", "", ""])
                continue
            rows.append([m, _fmt(v), _fmt(c["baseline"]), _fmt(c["delta"], "+.4f"),
                         _fmt(c["delta_pct"], "+.2f"), _fmt(c["p_value"]), str(c["n"])])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # Measure names left-aligned, numbers right-aligned so decimals line up.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    parts = [line(header), line(["-" * w for w in widths])]
    parts += [line(r) for r in rows]
    parts.append(f"queries: {result.num_queries}" + ("" if result.average == "all_judged" else
                                                      f" (average: {result.average})"))
    return "\n".join(parts)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Mann-Whitney ROC AUC (ties count 1/2); None when a class is missing."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return None
    r = rankdata(np.asarray(scores, dtype=np.float64))
    return float((r[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
