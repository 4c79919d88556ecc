from __future__ import annotations

import logging

import pytest

from rankvideo.data.benchmark import Query
from rankvideo.data.samplers import GroupSampler, GroupSpec, caption_targets

QUERIES = [Query("q1", "flood in Lisbon", "train"), Query("q2", "a parade", "train"), Query("q3", "no positive", "train")]
QRELS = {"q1": {"a": 3, "b": 1, "c": 0}, "q2": {"x": 3, "y": 3}, "q3": {"m": 1}}
RUN = {
    "q1": {"b": 9.0, "d": 8.0, "a": 7.0, "e": 6.0, "f": 5.0, "c": 4.0},
    "q2": {"z": 3.0, "w": 2.0, "x": 1.0, "v": 0.5},
    "q3": {"m": 1.0, "n": 0.5, "o": 0.2},
}


def test_groups_have_positive_first_and_hard_negatives_from_the_pool():
    s = GroupSampler(QUERIES, QRELS, RUN, GroupSpec(num_negatives=2, pool_depth=5), seed=0)
    assert len(s) == 2  # q3 has no grade-3 video
    for g in s.groups(0):
        assert g.labels == (1, 0, 0) and len(set(g.doc_ids)) == 3
        assert QRELS[g.qid][g.doc_ids[0]] == 3
        for d in g.doc_ids[1:]:
            assert QRELS[g.qid].get(d, 0) == 0  # b (grade 1) is never a negative
            assert d in list(RUN[g.qid])[:5]  # c is ranked 6th: outside pool_depth
        assert g.teacher == (-1.0, -1.0, -1.0)


def test_groups_are_deterministic_per_epoch_and_vary_across_epochs():
    a = GroupSampler(QUERIES, QRELS, RUN, GroupSpec(num_negatives=2), seed=7)
    b = GroupSampler(QUERIES, QRELS, RUN, GroupSpec(num_negatives=2), seed=7)
    assert a.groups(0) == b.groups(0) and a.groups(3) == b.groups(3)
    assert any(a.groups(0) != a.groups(e) for e in range(1, 6))


def test_teacher_labels_are_attached_and_missing_ones_marked():
    s = GroupSampler(QUERIES[:1], QRELS, RUN, GroupSpec(num_negatives=1), seed=0, teacher={("q1", "a"): 0.9})
    g = s.groups(0)[0]
    assert g.teacher[0] == 0.9 and g.teacher[1] == -1.0


def test_skips_are_logged_and_an_empty_result_is_an_error(caplog):
    with caplog.at_level(logging.WARNING):
        GroupSampler(QUERIES, QRELS, RUN, GroupSpec(num_negatives=2), seed=0)
    assert "skipped 1 of 3 queries (no positive)" in caplog.text
    with pytest.raises(ValueError, match="no query"):
        GroupSampler(QUERIES[2:], QRELS, RUN, GroupSpec(), seed=0)
    with pytest.raises(ValueError, match="num_negatives"):
        GroupSampler(QUERIES, QRELS, RUN, GroupSpec(num_negatives=0), seed=0)


def test_caption_targets_one_video_per_query_each_once(caplog):
    queries = QUERIES + [Query("q4", "again", "train")]
    qrels = {**QRELS, "q4": {"a": 3}}
    got = caption_targets(queries, qrels, {"a": "cap a", "x": "cap x"})
    assert got == [("a", "cap a"), ("x", "cap x")]  # q4's positive a is already used
    with caplog.at_level(logging.WARNING):
        assert caption_targets(QUERIES[:1], QRELS, {}) == []
    assert "no caption" in caplog.text
