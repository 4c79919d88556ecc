"""Negative mining and query filters (paper section 3, items 3 and 5) on hand-made margins.

Each case spells out the margins, the teacher's answers and the first-stage ranks/scores, and the
exact roles (or drop reason) expected, so a change to any rule shows up as a named failure."""

from __future__ import annotations

import pytest

from rankvideo.teacher.mining import DROP_REASONS, Candidate, MiningConfig, mine, mine_query

PAPER = MiningConfig()  # trusted_max -6, suspect_min -8, top 1000, ratio 2, no fallback


def pos(doc, margin=3.0, rank=1, score=10.0, says_yes=None):
    return Candidate(doc, 1, margin, says_yes, rank, score)


def neg(doc, margin, rank=2, score=8.0, says_yes=None):
    return Candidate(doc, 0, margin, says_yes, rank, score)


def test_paper_defaults():
    assert (PAPER.trusted_max, PAPER.suspect_min, PAPER.first_stage_depth, PAPER.max_neg_pos_ratio) == (-6.0, -8.0, 1000, 2.0)
    assert PAPER.drop_misclassified_positives and not PAPER.fallback_trusted


def test_trusted_suspected_and_hard_roles():
    m = mine_query("q", [
        pos("p"),
        neg("t1", -6.0, 2),   # says no, d <= -6: trusted (boundary included)
        neg("t2", -9.5, 3),   # trusted
        neg("h1", -5.99, 4),  # says no, d > -6: hard
        neg("h2", -0.5, 5),   # hard
        neg("s1", 0.7, 6),    # says yes, d > -8: suspected positive, dropped
        neg("s2", -7.9, 7, says_yes=True),   # written "yes" against its margin, d > -8: suspected
        neg("h3", -8.0, 8, says_yes=True),   # says yes but d <= -8: neither trusted nor suspected -> hard
        neg("t3", -7.0, 9, says_yes=False),  # an explicit "no" counts like the default for d < 0: trusted
    ], PAPER)
    assert m.kept and m.reason is None and not m.fallback
    assert m.roles == {"p": "positive", "t1": "trusted", "t2": "trusted", "h1": "hard", "h2": "hard",
                       "h3": "hard", "t3": "trusted"}
    assert m.dropped_pairs == {"s1": "suspected_positive", "s2": "suspected_positive"}


def test_says_no_at_positive_margin_is_hard_not_trusted():
    # A written "no" with d > 0 is not trusted (d > -6) and not suspected (it does not say yes).
    m = mine_query("q", [pos("p"), neg("t", -7.0), neg("x", 2.0, says_yes=False)], PAPER)
    assert m.roles == {"p": "positive", "t": "trusted", "x": "hard"}


def test_at_least_one_trusted_negative_or_dropped():
    cands = [pos("p"), neg("h1", -1.0, 2), neg("h2", -5.0, 3), neg("s", 4.0, 4)]
    m = mine_query("q", cands, PAPER)
    assert not m.kept and m.reason == "no_trusted_negative" and m.roles == {}


def test_trusted_fallback_promotes_most_negative_hard_negative():
    cfg = MiningConfig(fallback_trusted=True)
    cands = [pos("p"), neg("h1", -1.0, 2), neg("h2", -5.0, 3), neg("h3", -5.0, 4), neg("s", 4.0, 5)]
    m = mine_query("q", cands, cfg)
    # h2 and h3 tie at -5.0: the doc id decides, never the input order.
    assert m.kept and m.fallback
    assert m.roles == {"p": "positive", "h1": "hard", "h2": "trusted", "h3": "hard"}
    assert mine_query("q", list(reversed(cands)), cfg).roles == m.roles


def test_no_negative_left_after_dropping_suspects():
    m = mine_query("q", [pos("p"), neg("s1", 1.0), neg("s2", 0.1, 3)], MiningConfig(fallback_trusted=True))
    assert not m.kept and m.reason == "no_negative"
    assert m.dropped_pairs == {"s1": "suspected_positive", "s2": "suspected_positive"}


def test_no_positive():
    assert mine_query("q", [neg("t", -9.0)], PAPER).reason == "no_positive"


def test_positive_outside_first_stage_top_k():
    cfg = MiningConfig(first_stage_depth=10)
    # Rank 11 and "not retrieved at all" both fail; rank 10 passes.
    assert mine_query("q", [pos("p", rank=11), neg("t", -9.0)], cfg).reason == "positive_not_in_first_stage"
    assert mine_query("q", [pos("p", rank=None, score=None), neg("t", -9.0)], cfg).reason == "positive_not_in_first_stage"
    m = mine_query("q", [pos("p", rank=10), neg("t", -9.0)], cfg)
    assert m.kept and m.roles == {"p": "positive", "t": "trusted"}
    # With two positives, only the one outside the top k goes.
    m = mine_query("q", [pos("p1", rank=3), pos("p2", rank=50), neg("t", -9.0)], cfg)
    assert m.kept and m.roles == {"p1": "positive", "t": "trusted"}
    assert m.dropped_pairs == {"p2": "positive_not_in_first_stage"}


def test_misclassified_positive_filter():
    # The teacher says no to p2: that pair goes; to every positive: the query goes.
    m = mine_query("q", [pos("p1", 2.0), pos("p2", -3.0, rank=2), neg("t", -9.0, 3)], PAPER)
    assert m.kept and m.roles == {"p1": "positive", "t": "trusted"}
    assert m.dropped_pairs == {"p2": "teacher_misclassified_positive"}
    m = mine_query("q", [pos("p", 5.0, says_yes=False), neg("t", -9.0)], PAPER)
    assert m.reason == "teacher_misclassified_positive"
    # Switched off, a "no" positive is kept.
    off = MiningConfig(drop_misclassified_positives=False)
    assert mine_query("q", [pos("p", -3.0), neg("t", -9.0)], off).roles == {"p": "positive", "t": "trusted"}


def test_first_stage_ratio_filter():
    # Top kept negative 20.1 > 2 x 10 -> dropped; exactly 2x is kept (the rule is "more than").
    assert mine_query("q", [pos("p", score=10.0), neg("t", -9.0, 1, 20.1)], PAPER).reason == "negative_outscores_positive"
    assert mine_query("q", [pos("p", score=10.0), neg("t", -9.0, 1, 20.0)], PAPER).kept
    # A suspected positive scoring 50 does not count: it never becomes a training negative.
    m = mine_query("q", [pos("p", score=10.0), neg("s", 3.0, 1, 50.0), neg("t", -9.0, 3, 5.0)], PAPER)
    assert m.kept and m.roles == {"p": "positive", "t": "trusted"}
    # The best kept positive is the reference.
    m = mine_query("q", [pos("p1", score=4.0, rank=5), pos("p2", score=11.0, rank=2), neg("t", -9.0, 1, 21.0)], PAPER)
    assert m.kept
    # Disabled, or undefined for a non-positive first-stage score (counted, not applied).
    assert mine_query("q", [pos("p", score=10.0), neg("t", -9.0, 1, 99.0)], MiningConfig(max_neg_pos_ratio=None)).kept
    m = mine_query("q", [pos("p", score=0.0), neg("t", -9.0, 1, 99.0)], PAPER)
    assert m.kept and m.ratio_undefined


def test_rule_order_first_failure_names_the_drop():
    # Fails both the ratio filter and the trusted rule: the ratio filter comes first.
    m = mine_query("q", [pos("p", score=1.0), neg("h", -1.0, 1, 9.0)], PAPER)
    assert m.reason == "negative_outscores_positive"


def test_duplicate_candidate_is_an_error():
    with pytest.raises(ValueError, match="twice"):
        mine_query("q", [pos("p"), neg("p", -9.0)], PAPER)


def test_mine_counts():
    results, counts = mine({
        "a": [pos("p"), neg("t", -9.0), neg("h", -1.0, 3), neg("s", 2.0, 4)],
        "b": [pos("p"), neg("h", -1.0)],
        "c": [neg("t", -9.0)],
        "d": [pos("p", -1.0), pos("p2", 1.0, rank=2), neg("t", -7.0, 3)],
    }, PAPER)
    assert [q for q, m in results.items() if m.kept] == ["a", "d"]
    assert counts["queries_in"] == 4 and counts["queries_kept"] == 2
    assert counts["queries_dropped"] == {r: {"no_trusted_negative": 1, "no_positive": 1}.get(r, 0) for r in DROP_REASONS}
    assert counts["pairs"] == {"positive": 2, "trusted": 2, "hard": 1}
    assert counts["pairs_dropped"] == {"positive_not_in_first_stage": 0, "teacher_misclassified_positive": 1,
                                       "suspected_positive": 1}
    assert counts["fallback_queries"] == 0


def test_from_cfg_rejects_unknown_keys():
    assert MiningConfig.from_cfg({"trusted_max": -2, "max_neg_pos_ratio": None}) == MiningConfig(trusted_max=-2.0, max_neg_pos_ratio=None)
    with pytest.raises(ValueError, match="unknown keys"):
        MiningConfig.from_cfg({"trusted_min": -2})
