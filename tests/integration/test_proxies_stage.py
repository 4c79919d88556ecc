"""The `proxies` stage end to end on a miniature corpus in the real MultiVENT 2.0 layout (shard
folders, numeric ids, queries CSV, judgments JSONL, no captions or transcripts given): the tiny
captioner (and PocketSphinx and Tesseract where installed) write captions/asr/ocr.jsonl, an
unreadable video is a counted skip, a second run resumes everything, and `data=multivent2` builds
its benchmark from the files the stage wrote."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_run_cfg
from rankvideo.data.benchmark import Benchmark
from rankvideo.data.official import shard_path, write_judgments
from rankvideo.data.synthetic.narration import NarrationSpec, speak
from rankvideo.data.synthetic.scenes import render, sample_scene
from rankvideo.data.video import write_video
from rankvideo.stages import stage_fn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HAVE_ASR = importlib.util.find_spec("pocketsphinx") is not None and shutil.which("flite") is not None
HAVE_OCR = importlib.util.find_spec("pytesseract") is not None and shutil.which("tesseract") is not None
SPOKEN = "We are live in Porto covering the wildfire."
WORDS = {"150": "FLOOD", "157": "ALERT", "260": "NEWS"}


def _miniature(root: Path) -> Path:
    data = root / "data" / "multivent2"
    for i, (doc, word) in enumerate(WORDS.items()):
        scene = sample_scene(np.random.default_rng(i), width=96, height=96, fps=8, seconds=2.0, max_objects=2,
                             text_words=[word], text_rate=1.0, kind_index=i, place_index=-1)
        audio, rate = speak(SPOKEN, NarrationSpec(enabled=True)) if (HAVE_ASR and doc == "150") else (None, 16000)
        target = shard_path(data / "videos", doc)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_video(target, render(scene), fps=8, audio=audio, audio_rate=rate)
    broken = shard_path(data / "videos", "399")
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated download")
    with open(data / "multivent_2_q.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["Query_id", "query"], ["1", "flood warning"], ["2", "breaking news"], ["3", "alert"]])
    write_judgments(data / "multivent_2_j.jsonl", {"1": {"150": 1}, "2": {"260": 1}, "3": {"157": 1}})
    with open(data / "multivent_2_test_q.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["Query_id", "query"], ["4", "wildfire in Porto"]])
    write_judgments(data / "multivent_2_test_j.jsonl", {"4": {"150": 3, "157": 1}})
    return data


def _lines(path: Path) -> dict[str, str]:
    return {r["doc_id"]: r["text"] for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.slow  # 32 s on 2 busy cores (loading the tiny captioner is most of it)
def test_proxies_stage_on_a_miniature_multivent_corpus(tmp_path):
    data = _miniature(tmp_path)
    cfg = tiny_run_cfg(tmp_path / "run", "data=multivent2", f"data.root={data}", "data.val_fraction=0.0",
                       "proxies/captioner=tiny", "proxies.captioner.num_frames=4", "proxies.captioner.max_new_tokens=32",
                       f"proxies/asr={'pocketsphinx' if HAVE_ASR else 'none'}",
                       *(["proxies/ocr=tesseract", "proxies.ocr.fps=4.0"] if HAVE_OCR else ["proxies/ocr=none"]))
    info = stage_fn("proxies")(cfg, source="test", pipeline_cfg=cfg)
    out = Path(cfg.paths.proxies_dir)
    assert (info["num_videos"], info["num_written"], info["num_skipped"]) == (4, 3, 1)
    assert list(info["skipped"]) == ["399"] and info["skip_reasons"] == {"undecodable": 1}
    captions = _lines(out / "captions.jsonl")
    assert set(captions) == set(WORDS) and all(captions.values())  # the tiny backbone says something of each
    assert not any("<think>" in c for c in captions.values())
    if HAVE_ASR:
        asr = _lines(out / "asr.jsonl")
        assert {"live", "porto"} <= set(asr["150"].split()) and asr["157"] == "" and asr["260"] == ""  # no audio: empty
    else:
        assert not (out / "asr.jsonl").exists()
    if HAVE_OCR:
        assert "FLOOD" in _lines(out / "ocr.jsonl")["150"].split()

    # Started again (after a kill or not): every video is taken from the journal, same files.
    before = (out / "captions.jsonl").read_bytes()
    again = stage_fn("proxies")(cfg, source="test", pipeline_cfg=cfg)
    assert again["videos_resumed"] == 4 and (out / "captions.jsonl").read_bytes() == before

    # data=multivent2 reads what the stage wrote: the benchmark carries the tool-made proxies.
    feats = [f"data.captions={out / 'captions.jsonl'}"]
    feats += [f"data.asr={out / 'asr.jsonl'}"] if HAVE_ASR else []
    feats += [f"data.ocr={out / 'ocr.jsonl'}"] if HAVE_OCR else []
    bcfg = tiny_run_cfg(tmp_path / "run", "data=multivent2", f"data.root={data}", "data.val_fraction=0.0", *feats)
    stage_fn("synthesize")(bcfg, source="test", pipeline_cfg=bcfg)
    corpus = {d.doc_id: d for d in Benchmark(bcfg.paths.benchmark).corpus()}
    assert {d: corpus[d].caption for d in WORDS} == captions
    if HAVE_OCR:
        assert "FLOOD" in corpus["150"].ocr.split()
