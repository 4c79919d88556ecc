"""Strict parsing of generator output: every bad answer is dropped with its reason."""

import pytest

from rankvideo.querygen.parse import DROP_REASONS, ParseConfig, QueryFilter, clean, parse_query

EVIDENCE = ("The video shows a red circle that moves left. In total 3 shapes can be seen. "
            "The word EVACUATE is written at the bottom of the screen.")

# (generator answer, expected query or None, expected drop reason or None)
CASES = [
    ("flood in Lisbon with a red circle", "flood in Lisbon with a red circle", None),
    ('Query: "flood in Lisbon with a red circle"', "flood in Lisbon with a red circle", None),
    ("Search query: parade in Lima at night.", "parade in Lima at night.", None),
    ("Here is a search query: storm footage with a blue square", "storm footage with a blue square", None),
    ("**Query:** wildfire video with smoke", "wildfire video with smoke", None),
    ("1. wildfire video with smoke", "wildfire video with smoke", None),
    ("Query:\nfire in Oslo with a blue square", "fire in Oslo with a blue square", None),
    ("“marathon in Porto with green triangle”", "marathon in Porto with green triangle", None),
    ("fire in Oslo\nThis query finds the video because...", "fire in Oslo", None),
    ("", None, "empty"),
    ("   \n  \n", None, "empty"),
    ('Query: ""', None, "empty"),
    ("...", None, "empty"),
    ("I cannot help with that request.", None, "refusal"),
    ("As an AI language model, I can't browse videos.", None, "refusal"),
    ("I'm sorry, but the text is not enough to write a query.", None, "refusal"),
    ("Sorry, I am unable to assist with this.", None, "refusal"),
    ("flood", None, "too_short"),
    ("Query: red circle", None, "too_short"),
    (" ".join(["flood"] * 33), None, "too_long"),
    ("a" * 10 + " " + "b" * 250 + " c", None, "too_long"),
    ("The video shows a red circle that moves left.", None, "copied"),
    ('"The word EVACUATE is written at the bottom of the screen."', None, "copied"),
    ("the video shows a red circle that moves LEFT today", None, "copied"),  # near-verbatim: 8 of 10 words in a run
    ("EVACUATE", None, "too_short"),
    ("This is a search query: storm in Quito with a red circle", "storm in Quito with a red circle", None),
    ("Quito: finish line: finish line: finish line: finish line", None, "repetition"),
    ("marathon marathon marathon in Quito", None, "repetition"),
    ("the red circle and the blue square in the flood", "the red circle and the blue square in the flood", None),
    ("I'm ready to help you write a search query.", None, "chatter"),
    ("Sure! Here is what you asked for", None, "chatter"),
    ("Let me know if you need another query", None, "chatter"),
    ("Okay, flood in Lisbon", None, "chatter"),
]
SHORT_EVIDENCE = [
    ("Lisbon flood live", None, "copied"),  # the whole (short) evidence, word for word
    ("Lisbon flood live footage", "Lisbon flood live footage", None),  # 3 of 4 words: below copy_fraction
    ("flood footage from Lisbon", "flood footage from Lisbon", None),
]


@pytest.mark.parametrize("raw, query, reason", CASES)
def test_parse_table(raw, query, reason):
    assert parse_query(raw, EVIDENCE) == (query, reason)


@pytest.mark.parametrize("raw, query, reason", SHORT_EVIDENCE)
def test_copy_of_a_short_evidence(raw, query, reason):
    assert parse_query(raw, "Lisbon flood live") == (query, reason)


def test_short_overlap_with_evidence_is_not_copying():
    # a query naming the on-screen word and an object is what the ocr/caption variants ask for
    assert parse_query("video with a red circle and EVACUATE on screen", EVIDENCE) == (
        "video with a red circle and EVACUATE on screen", None)


def test_limits_come_from_config():
    cfg = ParseConfig(min_words=1, max_words=3)
    assert parse_query("flood", EVIDENCE, cfg) == ("flood", None)
    assert parse_query("flood in Lisbon today", EVIDENCE, cfg) == (None, "too_long")
    with pytest.raises(ValueError, match="unknown key"):
        ParseConfig.from_mapping({"max_word": 3})


def test_clean_strips_labels_and_quotes():
    assert clean("Search: 'fire in Oslo'") == "fire in Oslo"
    assert clean("- `storm in Lagos at night`") == "storm in Lagos at night"


def test_filter_counts_duplicates_and_every_reason():
    f = QueryFilter()
    assert f("flood in Lisbon with a red circle", EVIDENCE) == ("flood in Lisbon with a red circle", None)
    assert f("Flood in Lisbon with a red circle!", EVIDENCE) == (None, "duplicate")  # same words
    assert f("flood in lisbon with red circle", EVIDENCE) == (None, "duplicate")  # Jaccard 6/7 >= 0.8
    assert f("flood in Lisbon with a blue square", EVIDENCE)[1] is None  # Jaccard 5/9: a new query
    f("", EVIDENCE)
    f("As an AI I cannot", EVIDENCE)
    assert f.drops == {**{r: 0 for r in DROP_REASONS}, "duplicate": 2, "empty": 1, "refusal": 1}
