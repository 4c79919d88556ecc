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


# -- negatives_with_replacement: the official sampler's rule (train_reranker.py) ----------------------

ONE_NEG_QRELS = {"q1": {"a": 3}, "q2": {"x": 3, "y": 3}}
ONE_NEG_RUN = {"q1": {"a": 2.0, "n": 1.0}, "q2": {"x": 3.0, "u": 2.0, "v": 1.5, "w": 1.0, "y": 0.5}}


def test_k1_with_replacement_draws_a_query_with_one_negative_every_epoch():
    """K = 1: q1's only negative is drawn again every epoch (each epoch draws afresh from the whole
    pool), and the option gives exactly the groups of the default rule."""
    spec = GroupSpec(num_negatives=1, negatives_with_replacement=True)
    s = GroupSampler(QUERIES[:2], ONE_NEG_QRELS, ONE_NEG_RUN, spec, seed=3)
    plain = GroupSampler(QUERIES[:2], ONE_NEG_QRELS, ONE_NEG_RUN, GroupSpec(num_negatives=1), seed=3)
    assert len(s) == 2
    seen_q2 = set()
    for epoch in range(6):
        groups = {g.qid: g for g in s.groups(epoch)}
        assert groups["q1"].doc_ids == ("a", "n") and groups["q1"].labels == (1, 0)
        assert groups["q2"].doc_ids[0] in ("x", "y") and groups["q2"].doc_ids[1] in ("u", "v", "w")
        seen_q2.add(groups["q2"].doc_ids[1])
        assert s.groups(epoch) == plain.groups(epoch)
    assert len(seen_q2) > 1  # q2's negative changes across epochs: drawn anew, not cycled


def test_k1_draws_by_hand_from_the_seeded_stream():
    """The draws of one epoch, derived by hand from numpy's generator seeded with (seed, epoch):
    per query in order, the positive (integers), the K negatives (choice), then the query order."""
    import numpy as np

    spec = GroupSpec(num_negatives=1, negatives_with_replacement=True)
    s = GroupSampler(QUERIES[:2], ONE_NEG_QRELS, ONE_NEG_RUN, spec, seed=3)
    rng = np.random.default_rng([3, 4])
    q1_pos = ["a"][int(rng.integers(1))]
    q1_neg = ["n"][int(rng.choice(1, size=1, replace=False)[0])]
    q2_pos = ["x", "y"][int(rng.integers(2))]
    q2_neg = ["u", "v", "w"][int(rng.choice(3, size=1, replace=False)[0])]
    order = rng.permutation(2)
    expected = [[("q1", (q1_pos, q1_neg)), ("q2", (q2_pos, q2_neg))][int(i)] for i in order]
    assert [(g.qid, g.doc_ids) for g in s.groups(4)] == expected
    assert expected == [("q2", ("x", "w")), ("q1", ("a", "n"))]  # pinned: numpy's PCG64 stream


def test_k2_with_replacement_keeps_a_short_pool_and_repeats_its_negative():
    """K = 2: q1 has one negative. The default rule skips the query; with replacement its group is
    (a, n, n) every epoch, while q2 (three negatives) still gets two distinct ones."""
    plain = GroupSampler(QUERIES[:2], ONE_NEG_QRELS, ONE_NEG_RUN, GroupSpec(num_negatives=2), seed=0)
    assert [q.qid for q, _, _ in plain.items] == ["q2"]
    s = GroupSampler(QUERIES[:2], ONE_NEG_QRELS, ONE_NEG_RUN,
                     GroupSpec(num_negatives=2, negatives_with_replacement=True), seed=0)
    assert len(s) == 2
    for epoch in range(5):
        groups = {g.qid: g for g in s.groups(epoch)}
        assert groups["q1"].doc_ids == ("a", "n", "n") and groups["q1"].labels == (1, 0, 0)
        assert len(set(groups["q2"].doc_ids[1:])) == 2
    # A query without any negative is still skipped.
    with pytest.raises(ValueError, match="no query"):
        GroupSampler(QUERIES[:1], {"q1": {"a": 3}}, {"q1": {"a": 1.0}},
                     GroupSpec(num_negatives=2, negatives_with_replacement=True), seed=0)


def test_stage2_groups_take_the_teachers_grade_bounds_from_the_config():
    from conftest import compose_cfg
    from rankvideo.stages.curriculum import group_spec

    spec = group_spec(compose_cfg())
    assert (spec.positive_min_grade, spec.negative_max_grade, spec.num_negatives, spec.pool_depth) == (3, 0, 2, 100)
    assert spec.teacher_hardest == 0
    assert group_spec(compose_cfg(["+curriculum.stage2.teacher_hardest=10"])).teacher_hardest == 10
    # Partial matches (grades 1-2) as negatives: the teacher stage labels them, and stage 2 draws them.
    spec = group_spec(compose_cfg(["teacher.negative_max_grade=2"]))
    assert spec.negative_max_grade == 2
    qrels = {"q1": {"a": 3, "b": 2, "c": 1}}
    s = GroupSampler(QUERIES[:1], qrels, {"q1": {"a": 9.0, "b": 8.0, "c": 7.0, "d": 6.0}},
                     GroupSpec(num_negatives=3, negative_max_grade=2), seed=0)
    assert {d for g in s.groups(0) for d in g.doc_ids[1:]} == {"b", "c", "d"}


def test_teacher_hardest_keeps_the_negatives_the_teacher_scores_highest():
    """q1's negatives in the top 5 are d, e, f (grade 0). With teacher_hardest=2 only the two the
    teacher gives the highest p_yes (e, f) are drawn, never d, which has no teacher label (lowest);
    with teacher_hardest=1 and e, f tied, the doc id decides (e)."""
    teacher = {("q1", "a"): 0.99, ("q1", "e"): 0.3, ("q1", "f"): 0.3}
    spec = GroupSpec(num_negatives=1, pool_depth=5, teacher_hardest=2)
    s = GroupSampler(QUERIES[:1], QRELS, RUN, spec, seed=0, teacher={**teacher, ("q1", "f"): 0.4})
    assert {g.doc_ids[1] for e in range(8) for g in s.groups(e)} == {"e", "f"}
    s = GroupSampler(QUERIES[:1], QRELS, RUN, spec, seed=0, teacher=teacher)
    assert {g.doc_ids[1] for e in range(8) for g in s.groups(e)} == {"e", "f"}
    s = GroupSampler(QUERIES[:1], QRELS, RUN, GroupSpec(num_negatives=1, pool_depth=5, teacher_hardest=1),
                     seed=0, teacher=teacher)
    assert {g.doc_ids[1] for e in range(8) for g in s.groups(e)} == {"e"}
    # 0 (the default) draws from every negative, as before.
    s = GroupSampler(QUERIES[:1], QRELS, RUN, GroupSpec(num_negatives=1, pool_depth=5), seed=0, teacher=teacher)
    assert {g.doc_ids[1] for e in range(12) for g in s.groups(e)} == {"d", "e", "f"}
    with pytest.raises(ValueError, match="teacher_hardest needs the teacher's labels"):
        GroupSampler(QUERIES[:1], QRELS, RUN, spec, seed=0)
    with pytest.raises(ValueError, match="teacher_hardest must be >= 0"):
        GroupSampler(QUERIES[:1], QRELS, RUN, GroupSpec(teacher_hardest=-1), seed=0, teacher=teacher)
