"""Tests for rankvideo.retrieval.bm25: rankings and scores on hand-made corpora.

bm25s lowercases, splits on word characters (tokens of two or more), and removes English
stopwords; the words below are chosen so that what is left is obvious.
"""

from __future__ import annotations

import logging
import math

import pytest

from rankvideo.data.benchmark import Query, VideoDoc
from rankvideo.retrieval.bm25 import bm25_run


def _doc(doc_id: str, **fields) -> VideoDoc:
    return VideoDoc(doc_id=doc_id, video=f"videos/{doc_id}.mp4", **fields)


# After stopword removal (default fields title + description + asr):
#   d1: flood lisbon rescue boats river
#   d2: flood porto sandbag walls river
#   d3: wildfire lisbon water bombers hills
#   d4: festival osaka street dancers          (+ caption: red circle moves upward)
DOCS = [
    _doc("d1", title="Flood in Lisbon", asr="Rescue boats on the river."),
    _doc("d2", title="Flood in Porto", asr="Sandbag walls near the river."),
    _doc("d3", title="Wildfire in Lisbon", asr="Water bombers over the hills."),
    _doc("d4", title="Festival in Osaka", asr="Street dancers.", caption="A red circle moves upward."),
]
QUERIES = [
    # Only d2 has "sandbag" and "walls"; d1 shares only "flood"; d3 and d4 share nothing.
    Query("q1", "sandbag walls of the flood", "test"),
    # d3 has both terms; d1 only "lisbon"; d2 and d4 neither.
    Query("q2", "Wildfire in LISBON?", "test"),
]


def test_ranking_order_and_zero_scores_dropped():
    run = bm25_run(DOCS, QUERIES, show_progress=False)
    assert set(run) == {"q1", "q2"}
    assert list(run["q1"]) == ["d2", "d1"]  # docs sharing no term are not returned at all
    assert list(run["q2"]) == ["d3", "d1"]
    for ranked in run.values():
        scores = list(ranked.values())
        assert all(s > 0 for s in scores)
        assert scores == sorted(scores, reverse=True)
        assert all(type(s) is float for s in scores)


def test_depth_truncates():
    full = bm25_run(DOCS, QUERIES, show_progress=False)
    run = bm25_run(DOCS, QUERIES, depth=1, show_progress=False)
    assert run == {"q1": {"d2": full["q1"]["d2"]}, "q2": {"d3": full["q2"]["d3"]}}
    # A depth above the corpus size is fine (it is capped at the number of documents).
    deep = bm25_run(DOCS, QUERIES, depth=50, show_progress=False)
    assert list(deep["q1"]) == ["d2", "d1"]


def test_fields_select_the_indexed_text():
    q = [Query("q3", "circle moving upward", "test")]
    # "circle" and "upward" are only in d4's caption, which the default fields leave out.
    assert bm25_run(DOCS, q, show_progress=False) == {"q3": {}}
    run = bm25_run(DOCS, q, fields=("caption",), show_progress=False)
    assert list(run["q3"]) == ["d4"]
    # With caption added to the defaults d4 is still found and nothing else is.
    run = bm25_run(DOCS, q, fields=("title", "asr", "caption"), show_progress=False)
    assert list(run["q3"]) == ["d4"]


def test_query_with_only_stopwords_or_unknown_terms_returns_nothing():
    run = bm25_run(DOCS, [Query("q4", "the of and", "test"), Query("q5", "zebra", "test")], show_progress=False)
    assert run == {"q4": {}, "q5": {}}


def test_unknown_field_is_an_error():
    with pytest.raises(ValueError, match="transcript"):
        bm25_run(DOCS, QUERIES, fields=("title", "transcript"), show_progress=False)


def test_empty_corpus_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        bm25_run([], QUERIES, show_progress=False)


def test_docs_without_text_are_warned_about(caplog):
    docs = DOCS + [_doc("d5", caption="only a caption")]
    with caplog.at_level(logging.WARNING, logger="rankvideo.retrieval.bm25"):
        run = bm25_run(docs, QUERIES, show_progress=False)
    assert "1 of 5 videos have no text" in caplog.text
    assert "d5" not in run["q1"] and "d5" not in run["q2"]


def test_lucene_score_by_hand():
    # Tokens: a = [volcano, ash] (dl 2); b = [volcano, lava, lava, flows] (dl 4); avgdl = 3; N = 2.
    # bm25s' Lucene variant: idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and
    # tf part = tf / (tf + k1 * (1 - b + b * dl / avgdl)) (Lucene >= 8 drops the constant
    # (k1 + 1) factor of the textbook formula; it does not change any ranking).
    docs = [_doc("a", title="Volcano ash"), _doc("b", title="volcano LAVA lava flows")]
    k1, b = 1.5, 0.75
    idf_volcano = math.log(1 + (2 - 2 + 0.5) / (2 + 0.5))  # ln 1.2
    idf_lava = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))  # ln 2
    norm_a = k1 * (1 - b + b * 2 / 3)  # 1.125
    norm_b = k1 * (1 - b + b * 4 / 3)  # 1.875
    expected_a = idf_volcano * 1 / (1 + norm_a)  # 0.0857984
    expected_b = idf_volcano * 1 / (1 + norm_b) + idf_lava * 2 / (2 + norm_b)  # 0.4211696
    assert expected_a == pytest.approx(0.0857984, abs=1e-7)
    assert expected_b == pytest.approx(0.4211696, abs=1e-7)

    run = bm25_run(docs, [Query("q", "volcano lava", "test"), Query("r", "lava", "test")],
                   k1=k1, b=b, method="lucene", show_progress=False)
    assert list(run["q"]) == ["b", "a"]
    assert run["q"]["b"] == pytest.approx(expected_b, rel=1e-6)
    assert run["q"]["a"] == pytest.approx(expected_a, rel=1e-6)
    assert run["r"] == {"b": pytest.approx(idf_lava * 2 / 3.875, rel=1e-6)}  # 0.3577534
