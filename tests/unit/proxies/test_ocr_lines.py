"""OCR output cleaning: normalisation, noise lines dropped, one line kept once across frames."""

from __future__ import annotations

import pytest

from rankvideo.proxies.ocr import clean_lines, normalise_line, ocr_frames


@pytest.mark.parametrize("raw, expected", [
    ("  BREAKING   NEWS  ", "BREAKING NEWS"),
    ("| FLOOD _", "FLOOD"),
    ("\"Lisbon, today.\"", "Lisbon, today"),
    ("~~~", ""),
    ("a\tb", "a b"),
])
def test_normalise_line(raw, expected):
    assert normalise_line(raw) == expected


def test_clean_lines_dedups_across_frames_in_order_of_first_sighting():
    frames = ["FLOOD\n\nLi", "flood\nALERT  LEVEL 3", "| FLOOD |\nAlert level 3\n", "", "LIVE"]
    # 'Li' has 2 letters (kept at min_chars=2); case and spacing variants of a line are one line.
    assert clean_lines(frames) == ["FLOOD", "Li", "ALERT LEVEL 3", "LIVE"]
    assert clean_lines(frames, min_chars=3) == ["FLOOD", "ALERT LEVEL 3", "LIVE"]
    assert clean_lines([None, "", "  \n ."]) == []


def test_ocr_frames_joins_the_deduplicated_lines_of_every_frame():
    class Fake:
        def __init__(self):
            self.seen = 0

        def read(self, frame):
            self.seen += 1
            return ["UPDATE\n", "UPDATE\nx", "update\nNEWS 24"][self.seen - 1]

    engine = Fake()
    assert ocr_frames(engine, [0, 1, 2]) == "UPDATE\nNEWS 24"
    assert engine.seen == 3
