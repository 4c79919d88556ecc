"""Metrics: hand-computed cases, trec_eval's regression outputs, comparison."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import ir_measures
import pytest
from scipy import stats

from rankvideo.data.trec import read_qrels, read_trec_run
from rankvideo.eval import (
    DEFAULT_MEASURES,
    EvalResult,
    compare,
    evaluate,
    format_table,
    ndcg_curve,
    to_json_dict,
)

TESTDATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "testdata"
TREC_EVAL = TESTDATA / "trec_eval"
needs_trec_eval = pytest.mark.skipif(
    not TREC_EVAL.is_dir(),
    reason=f"trec_eval regression files not found at {TREC_EVAL} (shared/testdata is absent)")

log2 = math.log2


def test_default_measures_spelled_as_ir_measures():
    for name in DEFAULT_MEASURES:
        assert str(ir_measures.parse_measure(name)) == name


# --------------------------------------------------------------------------- hand cases

GRADED_QRELS = {"q": {"a": 3, "b": 0, "c": 1, "d": 2, "e": -1}}
# Ranking a, e, c, x (x unjudged, e judged negative); d relevant but not retrieved.
GRADED_RUN = {"q": {"a": 0.9, "e": 0.8, "c": 0.7, "x": 0.6}}


def test_ndcg_linear_gain_hand_computed():
    res = evaluate(GRADED_RUN, GRADED_QRELS, measures=["nDCG@2", "nDCG@5", "R@10", "RR@10"])
    # Gain = label (not 2^label - 1); a negative label gives no gain; discount
    # log2(rank + 1); the ideal ranking uses all labels >= 1: 3, 2, 1.
    ideal5 = 3 / log2(2) + 2 / log2(3) + 1 / log2(4)
    assert res.mean["nDCG@5"] == pytest.approx((3 / log2(2) + 1 / log2(4)) / ideal5, abs=1e-12)
    assert res.mean["nDCG@2"] == pytest.approx((3 / log2(2)) / (3 / log2(2) + 2 / log2(3)), abs=1e-12)
    assert res.mean["R@10"] == pytest.approx(2 / 3)  # a, c of a, c, d
    assert res.mean["RR@10"] == 1.0
    assert res.num_queries == 1


def test_relevance_level_changes_binary_measures_not_ndcg():
    base = evaluate(GRADED_RUN, GRADED_QRELS, measures=["nDCG@5", "R@10", "RR@10", "P@3"])
    lvl2 = evaluate(GRADED_RUN, GRADED_QRELS, measures=["nDCG@5", "R@10", "RR@10", "P@3",
                                                        "R(rel=3)@10", "R(rel=2)@10"],
                    relevance_level=2)
    # trec_eval -l2: only labels >= 2 (a, d) are relevant for R, RR, P ...
    assert lvl2.mean["R@10"] == pytest.approx(1 / 2)
    assert lvl2.mean["P@3"] == pytest.approx(1 / 3)
    assert base.mean["P@3"] == pytest.approx(2 / 3)
    assert lvl2.mean["RR@10"] == 1.0
    # ... while nDCG keeps the graded gains (trec_eval's ndcg_cut ignores -l).
    assert lvl2.mean["nDCG@5"] == base.mean["nDCG@5"]
    # An explicit rel= in the measure wins over relevance_level.
    assert lvl2.mean["R(rel=3)@10"] == 1.0
    # Two names for one computed measure both get its value.
    assert lvl2.mean["R(rel=2)@10"] == lvl2.mean["R@10"]
    with pytest.raises(ValueError):
        evaluate(GRADED_RUN, GRADED_QRELS, relevance_level=0)


def test_ties_broken_by_tiebreak_run_then_docid_descending():
    qrels = {"t": {"a": 1, "b": 0, "c": 0}}
    run = {"t": {"a": 0.5, "b": 0.5, "c": 0.5}}
    ms = ["nDCG@10", "RR@10", "RR"]
    # No tie-break: doc id descending, c b a -> relevant a at rank 3. ir-measures
    # computes RR@10 with its MS MARCO backend, which would put a first (doc id
    # ascending) and report 1.0; the strict ordering must prevent that.
    res = evaluate(run, qrels, measures=ms)
    assert res.mean["nDCG@10"] == pytest.approx(1 / log2(4))
    assert res.mean["RR@10"] == pytest.approx(1 / 3)
    assert res.mean["RR"] == pytest.approx(1 / 3)
    # Tie-break (first-stage) scores: b a c -> rank 2.
    res = evaluate(run, qrels, measures=ms, tiebreak_run={"t": {"a": 0.2, "b": 0.9, "c": 0.1}})
    assert res.mean["nDCG@10"] == pytest.approx(1 / log2(3))
    assert res.mean["RR@10"] == pytest.approx(1 / 2)
    # Docs missing from the tie-break run go after those present: c b a.
    res = evaluate(run, qrels, measures=ms, tiebreak_run={"t": {"b": 0.1, "c": 0.2}})
    assert res.mean["RR@10"] == pytest.approx(1 / 3)
    # The tie-break only acts on equal scores.
    res = evaluate({"t": {"a": 0.4, "b": 0.5, "c": 0.6}}, qrels, measures=ms,
                   tiebreak_run={"t": {"a": 9.0}})
    assert res.mean["RR@10"] == pytest.approx(1 / 3)


def test_judged_query_missing_from_run_counts_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    run = {"q1": {"a": 1.0}, "q3": {"c": 1.0}}
    res = evaluate(run, qrels, measures=["nDCG@10", "R@10", "RR@10"])
    assert res.num_queries == 3
    assert res.per_query["q2"] == {"nDCG@10": 0.0, "R@10": 0.0, "RR@10": 0.0}
    # q3 has judgments but none relevant: it counts, with 0.
    assert res.per_query["q3"]["nDCG@10"] == 0.0
    assert res.mean["nDCG@10"] == pytest.approx((1 + 0 + 0) / 3)
    assert res.mean["RR@10"] == pytest.approx(1 / 3)


def test_run_query_without_judgments_is_ignored(caplog):
    qrels = {"q1": {"a": 1, "b": 0}}
    run = {"q1": {"b": 2.0, "a": 1.0}, "zz": {"a": 1.0}, "yy": {"b": 1.0}}
    with caplog.at_level(logging.INFO, logger="rankvideo.eval.metrics"):
        res = evaluate(run, qrels, measures=["nDCG@10"])
    assert res.num_queries == 1 and set(res.per_query) == {"q1"}
    assert res.mean["nDCG@10"] == pytest.approx(1 / log2(3))
    assert res.unjudged_run_queries == 2
    assert any("2 run queries without judgments" in r.getMessage() for r in caplog.records)


def test_empty_qrels_rejected():
    with pytest.raises(ValueError):
        evaluate({"q": {"a": 1.0}}, {})


# --------------------------------------------------------------------------- trec_eval

# trec_eval measure -> ours. recip_rank has no cutoff in trec_eval: it is "RR".
TREC_EVAL_TO_OURS = {
    "ndcg_cut_5": "nDCG@5", "ndcg_cut_10": "nDCG@10", "ndcg_cut_15": "nDCG@15",
    "ndcg_cut_20": "nDCG@20", "ndcg_cut_30": "nDCG@30", "ndcg_cut_100": "nDCG@100",
    "ndcg_cut_200": "nDCG@200", "ndcg_cut_500": "nDCG@500", "ndcg_cut_1000": "nDCG@1000",
    "recall_10": "R@10", "recall_20": "R@20", "recall_100": "R@100",
    "recip_rank": "RR", "P_10": "P@10",
}


def _read_trec_eval_output(path: Path) -> dict[str, dict[str, float]]:
    """``measure<TAB>qid<TAB>value`` lines -> {qid or 'all': {measure: value}}."""
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        measure, qid, value = (c.strip() for c in line.split("\t"))
        if measure in TREC_EVAL_TO_OURS or measure == "num_q":
            out.setdefault(qid, {})[measure] = float(value)
    return out


@needs_trec_eval
@pytest.mark.parametrize("qrels_file, run_file, out_file, level", [
    # trec_eval -m all_trec -q qrels.test results.test (binary; run has score ties)
    ("qrels.test", "results.test", "out.test.aq", 1),
    # -l2 on graded labels -1..4. -l only moves the relevance threshold of
    # binary measures (recall, recip_rank, P); ndcg_cut always uses the graded
    # labels as gains, so relevance_level=2 mirrors it for every measure here.
    ("qrels.rel_level", "results.test", "out.test.aql", 2),
    # -c with query 302 absent from the run: it counts as 0 in the mean.
    ("qrels.test", "results.trunc", "out.test.aqc", 1),
])
def test_matches_trec_eval_regression_outputs(qrels_file, run_file, out_file, level):
    expected = _read_trec_eval_output(TREC_EVAL / out_file)
    res = evaluate(read_trec_run(TREC_EVAL / run_file), read_qrels(TREC_EVAL / qrels_file),
                   measures=[*TREC_EVAL_TO_OURS.values(), "RR@10"], relevance_level=level)
    assert res.num_queries == expected["all"]["num_q"] == 3
    checked = 0
    for qid, values in expected.items():
        ours = res.mean if qid == "all" else res.per_query[qid]
        for te_name, ours_name in TREC_EVAL_TO_OURS.items():
            # trec_eval prints 4 decimals.
            assert ours[ours_name] == pytest.approx(values[te_name], abs=5e-5), \
                f"{out_file} {qid} {te_name}"
            checked += 1
        if qid != "all":
            # RR@10 (MS MARCO backend in ir-measures) agrees with trec_eval's
            # uncut recip_rank whenever the first relevant doc is in the top 10.
            rr = values["recip_rank"]
            assert ours["RR@10"] == pytest.approx(rr if rr >= 0.1 - 1e-4 else 0.0, abs=5e-5)
    assert checked == 4 * len(TREC_EVAL_TO_OURS)


@needs_trec_eval
def test_trec_eval_values_quoted_in_readme():
    qrels = read_qrels(TREC_EVAL / "qrels.test")
    res = evaluate(read_trec_run(TREC_EVAL / "results.test"), qrels, measures=["nDCG@10", "RR", "P@10"])
    assert [round(res.per_query[q]["nDCG@10"], 4) for q in ("301", "302", "303")] == \
        [0.1518, 0.7530, 0.0]
    assert round(res.mean["nDCG@10"], 4) == 0.3016
    assert round(res.mean["P@10"], 4) == 0.3 and round(res.mean["RR"], 4) == 0.4064
    trunc = evaluate(read_trec_run(TREC_EVAL / "results.trunc"), qrels, measures=["nDCG@10"])
    assert round(trunc.mean["nDCG@10"], 4) == 0.1717


# --------------------------------------------------------------------------- compare


def _result(per_query: dict[str, dict[str, float]]) -> EvalResult:
    measures = next(iter(per_query.values())).keys()
    mean = {m: sum(v[m] for v in per_query.values()) / len(per_query) for m in measures}
    return EvalResult(mean=mean, per_query=per_query, num_queries=len(per_query))


def test_compare_paired_t_test_and_delta_pct():
    a = _result({"1": {"m": 0.5}, "2": {"m": 0.7}, "3": {"m": 0.9}})
    b = _result({"1": {"m": 0.4}, "2": {"m": 0.5}, "3": {"m": 0.6}})
    c = compare(a, b)["m"]
    # Differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t = 0.2 / (0.1/sqrt(3)) = 2 sqrt(3)
    # with 2 degrees of freedom, where the t cdf is 1/2 + t / (2 sqrt(2 + t^2)),
    # so the two-sided p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(6/7) ~ 0.0742.
    assert c["p_value"] == pytest.approx(1 - math.sqrt(6 / 7), rel=1e-9)
    assert c["p_value"] == pytest.approx(stats.ttest_rel([0.5, 0.7, 0.9], [0.4, 0.5, 0.6]).pvalue)
    assert c["system"] == pytest.approx(0.7) and c["baseline"] == pytest.approx(0.5)
    assert c["delta"] == pytest.approx(0.2)
    assert c["delta_pct"] == pytest.approx(40.0)
    assert c["n"] == 3


def test_compare_edge_cases():
    a = _result({"1": {"m": 0.3, "z": 0.0}, "2": {"m": 0.6, "z": 0.5}, "3": {"m": 1.0, "z": 0.0}})
    b = _result({"1": {"m": 0.3, "z": 0.0}, "2": {"m": 0.6, "z": 0.0}})
    out = compare(a, b)
    # Only queries both cover are paired; identical pairs give p = 1, not NaN.
    assert out["m"]["n"] == 2 and out["m"]["p_value"] == 1.0
    # Baseline mean 0: relative change undefined.
    assert out["z"]["delta_pct"] is None
    assert compare(a, b, measures=["z"]).keys() == {"z"}
    with pytest.raises(KeyError):
        compare(a, b, measures=["nope"])


# --------------------------------------------------------------------------- output


def test_json_dict_curve_and_table():
    res = evaluate(GRADED_RUN, GRADED_QRELS, measures=["nDCG@10", "nDCG@5", "R@10"])
    base = evaluate({"q": {"c": 1.0, "a": 0.5}}, GRADED_QRELS, measures=["nDCG@10", "nDCG@5", "R@10"])
    cmp = compare(res, base)
    d = to_json_dict(res, cmp)
    json.dumps(d, allow_nan=False)  # JSON-ready
    assert d["nDCG@10"] == res.mean["nDCG@10"] and d["num_queries"] == 1
    assert d["per_query"]["q"]["R@10"] == res.mean["R@10"]
    assert d["compare"]["nDCG@10"]["n"] == 1 and d["compare"]["nDCG@10"]["p_value"] is None
    assert d["compare"]["R@10"]["p_value"] == 1.0  # same R: all differences 0
    assert any("doc id desc" in c for c in d["conventions"])
    assert "compare" not in to_json_dict(res)
    assert ndcg_curve(res) == [{"k": 5, "nDCG": res.mean["nDCG@5"]},
                               {"k": 10, "nDCG": res.mean["nDCG@10"]}]
    table = format_table(res, cmp)
    lines = table.splitlines()
    assert lines[0].split() == ["measure", "system", "baseline", "delta", "delta", "%", "p", "n"]
    assert lines[2].startswith("nDCG@10") and f"{res.mean['nDCG@10']:.4f}" in lines[2]
    plain = format_table(res).splitlines()
    assert plain[0].split() == ["measure", "value"] and len(plain) == 2 + 3 + 1


def test_pooled_recall_counts_pairs_not_queries():
    from rankvideo.eval import pooled_recall

    qrels = {"q1": {"a": 1, "b": 2, "c": 0}, "q2": {"x": 1}, "q3": {"y": 0}}
    run = {"q1": {"a": 3.0, "c": 2.0, "b": 1.0}, "q2": {"z": 1.0, "x": 0.5}}
    # top 2: q1 -> a, c (1 of 2 relevant); q2 -> z, x (1 of 1); q3 has no relevant doc.
    assert pooled_recall(run, qrels, 2) == pytest.approx(2 / 3)
    assert pooled_recall(run, qrels, 1) == pytest.approx(1 / 3)
    # A higher relevance level keeps only b (label 2), ranked 3rd in q1.
    assert pooled_recall(run, qrels, 2, relevance_level=2) == 0.0
    assert pooled_recall(run, qrels, 3, relevance_level=2) == 1.0
    with pytest.raises(ValueError, match="no relevant"):
        pooled_recall(run, {"q3": {"y": 0}}, 10)


def test_rr_at_k_on_the_top_k_equals_rr_at_k_on_the_whole_run():
    """RR@10 is computed on each query's top 10 only; on the whole run it is the same number."""
    import random

    import ir_measures

    from rankvideo.data.trec import strictly_ordered
    from rankvideo.eval.metrics import evaluate

    rng = random.Random(3)
    run, qrels = {}, {}
    for q in range(40):
        docs = [f"d{i}" for i in range(200)]
        run[f"q{q}"] = {d: round(rng.random(), 1) for d in docs}  # many ties
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 2]) for d in rng.sample(docs, 6)}
    ours = evaluate(run, qrels, measures=("RR@10", "nDCG@10"))
    whole = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.parse_measure("RR@10")], qrels,
                                                                 strictly_ordered(run))}
    assert {q: v["RR@10"] for q, v in ours.per_query.items()} == pytest.approx(whole, abs=0)


# --------------------------------------------------------------------------- averaging over queries

AVG_QRELS = {"q1": {"a": 2, "b": 0}, "q2": {"c": 1}, "q3": {"d": 1}, "q4": {"e": 0}}
# q3 is judged but missing from the run; q4 is ranked but judged non-relevant only.
AVG_RUN = {"q1": {"b": 0.9, "a": 0.5}, "q2": {"c": 0.9, "x": 0.1}, "q4": {"e": 0.5}}


def test_average_all_judged_vs_ranked_hand_computed():
    # q1: b (label 0) then a (label 2): DCG = 2 / log2(3), ideal 2 / log2(2) = 2 -> 1 / log2(3).
    q1 = (2 / log2(3)) / 2
    q2 = 1.0  # c first
    allj = evaluate(AVG_RUN, AVG_QRELS, measures=["nDCG@10"])
    assert allj.num_queries == 4 and set(allj.per_query) == {"q1", "q2", "q3", "q4"}
    assert allj.per_query["q3"]["nDCG@10"] == 0.0 and allj.per_query["q4"]["nDCG@10"] == 0.0
    assert allj.mean["nDCG@10"] == pytest.approx((q1 + q2 + 0 + 0) / 4, abs=1e-12)  # 0.40773
    # The official evaluate.py's mean: queries the run ranks that have a relevant judgment (its
    # qrels drop label-0 lines, so q4 is not in them; pytrec_eval scores only the run's queries).
    ranked = evaluate(AVG_RUN, AVG_QRELS, measures=["nDCG@10"], average="ranked")
    assert ranked.num_queries == 2 and set(ranked.per_query) == {"q1", "q2"}
    assert ranked.mean["nDCG@10"] == pytest.approx((q1 + q2) / 2, abs=1e-12)  # 0.81546
    assert ranked.per_query["q1"] == allj.per_query["q1"]
    assert any("official RankVideo evaluate.py" in c for c in to_json_dict(ranked)["conventions"])
    assert any("trec_eval -c" in c for c in to_json_dict(allj)["conventions"])
    assert "(average: ranked)" in format_table(ranked) and "average" not in format_table(allj)


def test_average_ranked_matches_pytrec_eval_over_the_runs_queries():
    """The official evaluate.py: pytrec_eval over qrels without label-0 lines, mean over the queries
    it returns."""
    import pytrec_eval

    qrels = {q: {d: r for d, r in docs.items() if r > 0} for q, docs in AVG_QRELS.items()}
    qrels = {q: docs for q, docs in qrels.items() if docs}
    per = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(AVG_RUN)
    official = sum(v["ndcg_cut_10"] for v in per.values()) / len(per)
    assert evaluate(AVG_RUN, AVG_QRELS, measures=["nDCG@10"], average="ranked").mean["nDCG@10"] == pytest.approx(official)


def test_average_is_checked():
    with pytest.raises(ValueError, match="average must be one of all_judged, ranked"):
        evaluate(AVG_RUN, AVG_QRELS, average="mean")
    with pytest.raises(ValueError, match="ranks no query with a relevant judgment"):
        evaluate({"q4": {"e": 1.0}}, AVG_QRELS, average="ranked")
