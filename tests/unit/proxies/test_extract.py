"""The per-video loop: output formats, unreadable videos as counted skips, resume after a kill."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from rankvideo.data.multivent import read_text_features
from rankvideo.data.video import read_clip, write_video
from rankvideo.proxies.extract import JOURNAL, extract_proxies

CFG = {"captioner": {"name": "stub"}, "asr": {"name": "stub"}, "ocr": {"name": "stub"}}


class StubBackends:
    """Reads each video for real (so a bad file fails as it would), then writes fixed texts; can
    be told to die after `kill_after` videos, like a killed job."""

    kinds = ["caption", "asr", "ocr"]

    def __init__(self, kill_after: int | None = None):
        self.calls: list[str] = []
        self.kill_after = kill_after

    def run(self, path: str) -> dict:
        if self.kill_after is not None and len(self.calls) == self.kill_after:
            raise KeyboardInterrupt("killed")
        self.calls.append(path)
        clip = read_clip(path, fps=2.0, max_frames=4)
        name = path.rsplit("/", 1)[-1]
        return {"caption": f"caption of {name} ({clip.num_frames} frames)", "asr": f"speech {name}", "ocr": ""}


@pytest.fixture
def videos(tmp_path):
    out = []
    for i in range(4):
        p = tmp_path / "videos" / f"{100 + i}.mp4"
        write_video(p, np.full((8, 32, 32, 3), 40 * i, np.uint8), 4)
        out.append((str(100 + i), str(p)))
    bad = tmp_path / "videos" / "999.mp4"
    bad.write_bytes(b"\x00\x00\x00 not an mp4 at all" * 20)
    empty = tmp_path / "videos" / "998.mp4"
    empty.write_bytes(b"")
    return out + [("999", str(bad)), ("998", str(empty))]


def test_writes_the_files_multivent2_reads_and_counts_skips(tmp_path, videos, caplog):
    out = tmp_path / "proxies"
    with caplog.at_level(logging.WARNING, logger="rankvideo.proxies.extract"):
        info = extract_proxies(videos, out, CFG, backends=StubBackends())
    assert sorted(p.name for p in out.iterdir()) == ["asr.jsonl", "captions.jsonl", "ocr.jsonl", JOURNAL, "proxies_info.json"]
    captions = read_text_features(out / "captions.jsonl")
    assert captions == {str(100 + i): f"caption of {100 + i}.mp4 (4 frames)" for i in range(4)}
    assert read_text_features(out / "asr.jsonl")["102"] == "speech 102.mp4"
    assert set(read_text_features(out / "ocr.jsonl").values()) == {""}
    # one JSON object per line, sorted by doc id
    assert [json.loads(line)["doc_id"] for line in (out / "asr.jsonl").read_text().splitlines()] == ["100", "101", "102", "103"]
    assert (info["num_videos"], info["num_written"], info["num_skipped"]) == (6, 4, 2)
    assert info["skip_reasons"] == {"empty file": 1, "undecodable": 1}
    assert set(info["skipped"]) == {"998", "999"} and "998.mp4" in info["skipped"]["998"]
    assert info["empty"] == {"caption": 0, "asr": 0, "ocr": 4}
    assert "999" in caplog.text and "skipped" in caplog.text
    assert json.loads((out / "proxies_info.json").read_text())["num_skipped"] == 2


def test_resumes_after_a_kill_and_redoes_only_the_unfinished_videos(tmp_path, videos):
    out = tmp_path / "proxies"
    first = StubBackends(kill_after=2)
    with pytest.raises(KeyboardInterrupt):
        extract_proxies(videos, out, CFG, backends=first)
    assert not (out / "captions.jsonl").exists()  # nothing final is written by a killed run
    # a record cut in the middle of its line by the kill is redone
    with open(out / JOURNAL, "a", encoding="utf-8") as fh:
        fh.write('{"doc_id": "102", "video": "102.mp4:')
    second = StubBackends()
    info = extract_proxies(videos, out, CFG, backends=second)
    # the videos after the kill, the unreadable ones included (a skip is a finished record too)
    assert [p.rsplit("/", 1)[-1] for p in second.calls] == ["102.mp4", "103.mp4", "999.mp4", "998.mp4"]
    assert info["videos_resumed"] == 2 and info["num_written"] == 4
    fresh = tmp_path / "fresh"
    extract_proxies(videos, fresh, CFG, backends=StubBackends())
    for name in ("captions.jsonl", "asr.jsonl", "ocr.jsonl", "proxies_info.json"):
        assert (out / name).read_bytes() == (fresh / name).read_bytes()
    # a third run has nothing to do; a changed config starts over
    third = StubBackends()
    assert extract_proxies(videos, out, CFG, backends=third)["videos_resumed"] == 6 and third.calls == []
    changed = StubBackends()
    extract_proxies(videos, out, {**CFG, "ocr": {"name": "stub", "upscale": 2}}, backends=changed)
    assert len(changed.calls) == 6


def test_a_changed_video_file_is_done_again(tmp_path, videos):
    out = tmp_path / "proxies"
    extract_proxies(videos[:2], out, CFG, backends=StubBackends())
    write_video(videos[0][1], np.zeros((16, 32, 32, 3), np.uint8), 4)  # a different file, another size
    again = StubBackends()
    extract_proxies(videos[:2], out, CFG, backends=again)
    assert [p.rsplit("/", 1)[-1] for p in again.calls] == ["100.mp4"]
