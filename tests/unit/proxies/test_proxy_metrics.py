"""Word error rate and OCR hits, against values worked out by hand."""

from __future__ import annotations

import pytest

from rankvideo.proxies.metrics import corpus_wer, edit_distance, ocr_hit, word_error_rate, words


def test_words_normalise_case_and_punctuation():
    assert words("Reporting from Porto, where the FLOOD continues.") == \
        ["reporting", "from", "porto", "where", "the", "flood", "continues"]


@pytest.mark.parametrize("ref, hyp, expected", [
    ("the cat sat", "the cat sat", 0.0),
    ("the cat sat", "the bat sat", 1 / 3),            # 1 substitution
    ("the cat sat", "the cat", 1 / 3),                # 1 deletion
    ("the cat sat", "the cat sat down there", 2 / 3),  # 2 insertions
    ("the cat sat on the mat", "cat sat on a mat today", 3 / 6),  # del 'the', sub the->a, ins 'today'
    ("a b", "", 1.0),
    ("", "", 0.0),
    ("", "noise", 1.0),
    ("Live in Porto.", "live in porto", 0.0),
])
def test_word_error_rate(ref, hyp, expected):
    assert word_error_rate(ref, hyp) == pytest.approx(expected)


def test_edit_distance_and_corpus_wer_weight_by_reference_length():
    assert edit_distance(list("kitten"), list("sitting")) == 3
    # per-clip 1/1 and 0/3: the corpus rate is 1 edit over 4 words, not the mean 0.5
    assert corpus_wer([("fire", "flood"), ("a b c", "a b c")]) == pytest.approx(0.25)


def test_ocr_hit_is_a_whole_word_match():
    assert ocr_hit("FLOOD", "Li\nflood warning")
    assert not ocr_hit("FLOOD", "FLOODS")
    assert not ocr_hit("FLOOD", "")
