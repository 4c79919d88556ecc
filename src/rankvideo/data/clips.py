"""Decoded clips, once per video per process: many queries share a video (a stage-2 group's
negatives, the candidates of many queries), and decoding is the slow part on a CPU."""

from __future__ import annotations

import logging
from pathlib import Path

from .benchmark import Benchmark
from .video import SAMPLING_RULES, Clip, VideoReadError, read_clip
from .visual_budget import VisualBudget, budget_from_config, fit_clip

log = logging.getLogger(__name__)


def clip_options(model_cfg) -> dict:
    """How a backbone wants its clips, from its model config: ``sampling`` (``frame_sampling``,
    default "grid") and ``budget`` (``visual_budget``, default none). Keyword arguments of
    :class:`ClipStore`; a config without these keys gives today's clips."""
    sampling = model_cfg.get("frame_sampling", None) or "grid"
    if sampling not in SAMPLING_RULES:
        raise ValueError(f"model.frame_sampling must be one of {list(SAMPLING_RULES)}, got {sampling!r}")
    return {"sampling": str(sampling), "budget": budget_from_config(model_cfg.get("visual_budget", None))}


def clip_settings(sampling: str = "grid", budget: VisualBudget | None = None) -> dict:
    """What the clip options add to a run's fingerprint: nothing for the defaults, so runs made
    before these options existed keep their fingerprint."""
    out: dict = {}
    if sampling != "grid":
        out["sampling"] = sampling
    if budget is not None:
        out["visual_budget"] = budget.as_dict()
    return out


class ClipStore:
    """`store[doc_id] -> Clip` at `fps`, at most `max_frames`, decoded on first use and kept.

    `sampling` is read_clip's frame rule; with a `budget`, the frames are fit to it once, when the
    clip is decoded (see rankvideo.data.visual_budget)."""

    def __init__(self, bench: Benchmark, *, fps: float, max_frames: int, sampling: str = "grid",
                 budget: VisualBudget | None = None):
        self.fps, self.max_frames = float(fps), int(max_frames)
        if sampling not in SAMPLING_RULES:
            raise ValueError(f"sampling must be one of {list(SAMPLING_RULES)}, got {sampling!r}")
        self.sampling, self.budget = sampling, budget
        self._paths: dict[str, Path] = {d.doc_id: bench.video_path(d) for d in bench.corpus()}
        self._cache: dict[str, Clip] = {}

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._paths

    def __getitem__(self, doc_id: str) -> Clip:
        clip = self._cache.get(doc_id)
        if clip is None:
            clip = self._cache[doc_id] = self.read(doc_id)
        return clip

    def read(self, doc_id: str) -> Clip:
        """The clip of `doc_id`, decoded (and fit to the budget) now and not kept: for readers that
        see each video once, such as reranking's prefetching workers."""
        if doc_id not in self._paths:
            raise KeyError(f"doc id {doc_id!r} is not in the benchmark's corpus.jsonl")
        clip = read_clip(self._paths[doc_id], fps=self.fps, max_frames=self.max_frames, sampling=self.sampling)
        return fit_clip(clip, self.budget)

    def fetch(self, doc_id: str) -> tuple[Clip | None, str | None]:
        """`(clip, None)`, or `(None, reason)` for a video that is not in the corpus or does not
        decode (read without keeping it, as `read`)."""
        if doc_id not in self._paths:
            return None, "not in the benchmark corpus"
        try:
            return self.read(doc_id), None
        except VideoReadError as e:
            return None, str(e)
