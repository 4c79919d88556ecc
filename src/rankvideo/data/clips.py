"""Decoded clips, once per video per process: many queries share a video (a stage-2 group's
negatives, the candidates of many queries), and decoding is the slow part on a CPU."""

from __future__ import annotations

import logging
from pathlib import Path

from .benchmark import Benchmark
from .video import Clip, read_clip

log = logging.getLogger(__name__)


class ClipStore:
    """`store[doc_id] -> Clip` at `fps`, at most `max_frames`, decoded on first use and kept."""

    def __init__(self, bench: Benchmark, *, fps: float, max_frames: int):
        self.fps, self.max_frames = float(fps), int(max_frames)
        self._paths: dict[str, Path] = {d.doc_id: bench.video_path(d) for d in bench.corpus()}
        self._cache: dict[str, Clip] = {}

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._paths

    def __getitem__(self, doc_id: str) -> Clip:
        clip = self._cache.get(doc_id)
        if clip is None:
            if doc_id not in self._paths:
                raise KeyError(f"doc id {doc_id!r} is not in the benchmark's corpus.jsonl")
            clip = read_clip(self._paths[doc_id], fps=self.fps, max_frames=self.max_frames)
            self._cache[doc_id] = clip
        return clip
