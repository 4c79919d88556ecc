"""The five evidence variants, from the corpus's fields or a proxies folder."""

import json

import pytest

from rankvideo.data.benchmark import VideoDoc
from rankvideo.data.trec import FormatError
from rankvideo.querygen.evidence import VARIANTS, Proxies, evidence_text, load_proxies

P = Proxies(doc_id="v1", caption="A red  circle moves left.", asr="We are live in Lima.", ocr="EVACUATE",
            title="Lima flood", description="Video filmed in Lima.")


def test_each_variant_sees_its_own_evidence():
    assert VARIANTS == ("caption", "asr", "ocr", "metadata", "all")
    assert evidence_text(P, "caption") == "A red circle moves left."  # whitespace normalised
    assert evidence_text(P, "asr") == "We are live in Lima."
    assert evidence_text(P, "ocr") == "EVACUATE"
    assert evidence_text(P, "metadata") == "Title: Lima flood\nDescription: Video filmed in Lima."
    assert evidence_text(P, "all") == ("Title: Lima flood\nDescription: Video filmed in Lima.\nCaption: A red circle moves left.\n"
                                       "Speech: We are live in Lima.\nOn-screen text: EVACUATE")


def test_missing_proxies_give_no_evidence():
    bare = Proxies(doc_id="v2", caption="A blue square.")
    assert evidence_text(bare, "ocr") == "" and evidence_text(bare, "asr") == "" and evidence_text(bare, "metadata") == ""
    assert evidence_text(bare, "all") == "Caption: A blue square."
    with pytest.raises(ValueError, match="unknown evidence variant 'speech'"):
        evidence_text(bare, "speech")


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_proxies_folder_replaces_the_corpus_texts(tmp_path):
    corpus = [VideoDoc("v1", "v1.mp4", title="T1", caption="old caption", asr="old asr"), VideoDoc("v2", "v2.mp4", asr="kept asr")]
    _write(tmp_path / "captions.jsonl", [{"doc_id": "v1", "text": "new caption"}])
    _write(tmp_path / "ocr.jsonl", [{"doc_id": "v1", "text": "STORM"}, {"doc_id": "v2", "text": ""}])
    got = load_proxies(corpus, tmp_path)  # no asr.jsonl: the corpus's transcripts stay
    assert got["v1"] == Proxies("v1", caption="new caption", asr="old asr", ocr="STORM", title="T1")
    assert got["v2"] == Proxies("v2", asr="kept asr")


def test_proxies_folder_errors_name_the_problem(tmp_path):
    corpus = [VideoDoc("v1", "v1.mp4")]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_proxies(corpus, tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="holds none of captions.jsonl"):
        load_proxies(corpus, tmp_path)
    (tmp_path / "asr.jsonl").write_text('{"doc_id": "v1", "text": "ok"}\n{"doc_id": "v1"}\n')
    with pytest.raises(FormatError, match=r"asr.jsonl.*2"):
        load_proxies(corpus, tmp_path)
