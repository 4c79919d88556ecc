"""The pre-training data module: seeded batches that follow the schedule, conversations about one
clip, and the held-out summary."""

from __future__ import annotations

import re

import pytest

from rankvideo.data.synthetic.build import VideoSpec
from rankvideo.data.synthetic.pretraining import PretrainCorpusConfig, build_corpus
from rankvideo.modules.pretraining import PretrainDataModule, parse_schedule, summarise

SCHEDULE = [
    {"until": 0.5, "forms": {"short": 1}, "qtypes": {"colour": 1}, "max_frames": 2, "turns": 3, "answers": "yes_no"},
    {"until": 1.0, "forms": {"rerank": 1, "caption": 1}},
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(PretrainCorpusConfig(num_videos=10, num_heldout=2, video=VideoSpec(seconds=2.0), num_workers=1),
                        tmp_path_factory.mktemp("c") / "corpus")


def _dm(corpus, **kw):
    args = dict(batch_size=4, steps_per_epoch=3, epochs=2, schedule=parse_schedule(SCHEDULE), qtype_weights={"object": 1},
                seed=0, heldout_per_video={"short": 2, "rerank": 1})
    args.update(kw)
    return PretrainDataModule(corpus, None, **args)


def test_batches_follow_the_schedule_and_are_seeded(corpus):
    dm = _dm(corpus)
    first, second = dm.epoch_batches(0), dm.epoch_batches(1)
    assert first == dm.epoch_batches(0)  # a pure function of (seed, epoch)
    for frames, convs in first:  # phase 1: terse colour questions, yes/no, 3 per clip, 2 frames
        assert frames == 2 and len(convs) == 4
        for conv in convs:
            assert len(conv) == 3 and len({e.index for e in conv}) == 1 and len({e.text for e in conv}) == 3
            assert all(e.form == "short" and e.qtype == "colour" and e.answer in ("yes", "no") for e in conv)
            assert all(e.index in corpus.train_indices for e in conv)
    for frames, convs in second:  # phase 2: every frame, one question, the global question types
        assert frames is None and {len(c) for c in convs} == {1}
        for (e,) in convs:
            assert e.form in ("rerank", "caption") and (e.form == "caption" or e.qtype == "object")


def test_heldout_questions_are_fixed_and_about_heldout_videos(corpus):
    dm = _dm(corpus)
    held = dm.heldout_examples()
    assert held == _dm(corpus).heldout_examples()
    assert {e.index for e in held} == set(corpus.heldout_indices)
    assert sum(e.form == "short" for e in held) == 2 * 2 and sum(e.form == "rerank" for e in held) == 2
    assert len({e.qtype for e in held if e.form == "short"}) == 4  # types taken in turn


def test_schedule_errors_name_the_phase():
    with pytest.raises(ValueError, match=r"schedule\[0\].forms: unknown prompt forms \['long'\]"):
        parse_schedule([{"until": 1.0, "forms": {"long": 1}}])
    with pytest.raises(ValueError, match="increasing `until`"):
        parse_schedule([{"until": 0.6, "forms": {"short": 1}}, {"until": 0.5, "forms": {"short": 1}}])
    with pytest.raises(ValueError, match=r"schedule\[0\].turns"):
        parse_schedule([{"until": 1.0, "forms": {"short": 1}, "turns": 0}])


def test_summary_accuracy_and_auc_by_hand():
    rows = [
        {"form": "short", "qtype": "colour", "correct": True, "margin": 2.0, "label": True, "nll": 0.1, "exact": True},
        {"form": "short", "qtype": "colour", "correct": False, "margin": 1.0, "label": False, "nll": 0.1, "exact": False},
        {"form": "short", "qtype": "count", "correct": True, "nll": 0.1, "exact": True},
        {"form": "rerank", "qtype": "relevance", "correct": True, "margin": -1.0, "label": False, "nll": 0.1, "exact": True},
        {"form": "rerank", "qtype": "relevance", "correct": True, "margin": 3.0, "label": True, "nll": 0.1, "exact": True},
        {"form": "caption", "qtype": "caption", "correct": False, "nll": 2.5, "exact": False},
    ]
    t = summarise(rows)
    assert t["accuracy"]["short/colour"] == 0.5 and t["accuracy"]["short"] == pytest.approx(2 / 3)
    assert t["accuracy"]["all"] == 0.8 and "caption" not in t["accuracy"]
    assert t["auc"]["short/colour"] == 1.0 and t["auc"]["rerank/relevance"] == 1.0
    assert t["nll"] == {"caption": 2.5}


def test_summary_orders_graded_queries_by_their_grade_not_their_drawn_answer():
    def row(margin, grade, yes):
        return {"form": "rerank", "qtype": "graded", "correct": (margin > 0) == yes, "margin": margin, "label": yes,
                "grade": grade, "nll": 0.1, "exact": True}

    # Full matches at 3 and 1, partial ones at 2 (answered yes) and 0 (answered no), irrelevant at -1.
    rows = [row(3.0, 3, True), row(1.0, 3, True), row(2.0, 1, True), row(0.0, 2, False), row(-1.0, 0, False)]
    auc = summarise(rows)["auc"]
    # Full over partial: (3 > 2, 3 > 0, 1 < 2, 1 > 0) = 3 of 4; partial over irrelevant: 2 of 2.
    assert auc["rerank/graded/full_vs_partial"] == 0.75 and auc["rerank/graded/partial_vs_none"] == 1.0
    # Every key is a metric name MLflow accepts (letters, digits, _ - . / and spaces).
    assert all(re.fullmatch(r"[\w\-./ ]+", k) for k in auc), sorted(auc)
    # The answer-based AUC counts the grade-1 row answered yes as a positive: yes (3, 1, 2) vs no (0, -1).
    assert auc["rerank/graded"] == 1.0
