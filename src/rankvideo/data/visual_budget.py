"""Fitting decoded frames to a visual-token budget before the model's processor sees them.

The official RankVideo inference hands frames to Qwen3-VL through qwen-vl-utils, which resizes
every frame of a video once, to one size chosen from a pixel budget:

- a per-frame floor ``min_pixels`` and ceiling ``max_pixels``;
- a budget for the whole clip, ``total_pixels``, of which each pair of frames (one temporal patch)
  may use an equal share, but never more than 768 merged tokens' worth and never less than 5 %
  above the floor;
- sides that are multiples of ``factor`` (the vision patch times the spatial merge: 16 x 2 = 32
  for Qwen3-VL, 14 x 2 = 28 for Qwen2.5-VL), aspect ratio kept as closely as rounding allows.

:func:`fit_frames` applies that rule here, so that the frames are resized once, by us; the
processor must then leave them as they are (:func:`processor_video_kwargs` says so). A budget is
set per backbone in the model config (``model.visual_budget``); without one nothing here runs
and frames reach the processor at their decoded size, as before.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from .video import Clip

__all__ = [
    "VisualBudget",
    "budget_from_config",
    "fit_clip",
    "fit_frames",
    "fitted_size",
    "frame_pixel_limit",
    "processor_factor",
    "processor_video_kwargs",
    "tokens_per_frame_pair",
]

# Per-frame ceiling of the rule, in merged tokens (each factor x factor pixels).
FRAME_MAX_TOKENS = 768
# The clip budget's share per frame is never below this multiple of min_pixels.
_FLOOR_SLACK = 1.05
# Frames per temporal patch: the budget is shared per pair of frames.
FRAMES_PER_PATCH = 2
# Widest aspect ratio the rule accepts (longer side over shorter side).
MAX_ASPECT_RATIO = 200


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class VisualBudget:
    """A pixel budget for the frames of one clip (see the module docstring for the rule).

    ``min_pixels`` and ``max_pixels`` bound one frame's pixel count, ``total_pixels`` is shared
    over the clip's frames, ``factor`` is what both sides of a frame are multiples of.
    """

    min_pixels: int
    max_pixels: int
    total_pixels: int
    factor: int

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _positive_int(getattr(self, field.name), f"VisualBudget.{field.name}")
        if self.max_pixels < self.min_pixels:
            raise ValueError(
                f"VisualBudget.max_pixels ({self.max_pixels}) must be >= min_pixels ({self.min_pixels})"
            )

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def budget_from_config(node, *, where: str = "model.visual_budget") -> VisualBudget | None:
    """The :class:`VisualBudget` of a config node with keys min_pixels, max_pixels, total_pixels
    and factor; None for a missing or null node. Errors name ``where`` and the offending key."""
    if node is None:
        return None
    if not isinstance(node, Mapping) and not hasattr(node, "keys"):
        raise ValueError(f"{where} must be null or a mapping of min_pixels, max_pixels, total_pixels, factor; "
                         f"got {node!r}")
    keys = {f.name for f in dataclasses.fields(VisualBudget)}
    given = set(node.keys())
    if given != keys:
        missing, unknown = sorted(keys - given), sorted(given - keys)
        raise ValueError(f"{where} needs exactly the keys {sorted(keys)}: missing {missing}, unknown {unknown}")
    try:
        return VisualBudget(**{k: node[k] for k in keys})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def frame_pixel_limit(budget: VisualBudget, num_frames: int) -> float:
    """The most pixels one frame of a ``num_frames``-frame clip may have under ``budget``.

    ``num_frames`` is counted as the processor will see it, rounded up to whole temporal patches.
    The limit is the clip budget's share per pair of frames, capped at 768 merged tokens and
    raised to 5 % above ``min_pixels``, then capped at ``max_pixels``.
    """
    num_frames = _positive_int(num_frames, "num_frames")
    frames = num_frames + (-num_frames % FRAMES_PER_PATCH)
    share = budget.total_pixels / frames * FRAMES_PER_PATCH
    token_cap = FRAME_MAX_TOKENS * budget.factor**2
    limit = max(min(token_cap, share), int(budget.min_pixels * _FLOOR_SLACK))
    return float(min(budget.max_pixels, limit))


def _to_multiple(x: float, factor: int, how) -> int:
    return int(how(x / factor)) * factor


def fitted_size(height: int, width: int, num_frames: int, budget: VisualBudget) -> tuple[int, int]:
    """(height, width) that ``num_frames`` frames of ``height`` x ``width`` are resized to.

    Each side is first rounded to the nearest multiple of ``budget.factor`` (halves to even, as
    Python's ``round``), at least one factor. If that holds more pixels than
    :func:`frame_pixel_limit`, both sides are scaled down by one ratio so that the area is at most
    the limit and rounded down to multiples of the factor; if fewer than ``min_pixels``, they are
    scaled up so that the area is at least ``min_pixels`` and rounded up.

    Raises:
        ValueError: a side < 1, or an aspect ratio above 200.
    """
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"frames of {height}x{width} have an aspect ratio above {MAX_ASPECT_RATIO}; "
                         "the visual budget cannot fit them")
    f = budget.factor
    limit = frame_pixel_limit(budget, num_frames)
    h, w = max(f, _to_multiple(height, f, round)), max(f, _to_multiple(width, f, round))
    if h * w > limit:
        shrink = math.sqrt(height * width / limit)
        h = max(f, _to_multiple(height / shrink, f, math.floor))
        w = max(f, _to_multiple(width / shrink, f, math.floor))
    elif h * w < budget.min_pixels:
        grow = math.sqrt(budget.min_pixels / (height * width))
        h, w = _to_multiple(height * grow, f, math.ceil), _to_multiple(width * grow, f, math.ceil)
    return h, w


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic, antialiased resize of uint8 [T, H, W, 3] frames, one frame at a time (bounded
    memory), rounded and clipped back to uint8."""
    import torch
    import torch.nn.functional as F

    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
        y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
        out[i] = y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def fit_frames(frames: np.ndarray, budget: VisualBudget | None) -> np.ndarray:
    """``frames`` (uint8 [T, H, W, 3]) resized to :func:`fitted_size` under ``budget``.

    Returns ``frames`` itself, untouched, when ``budget`` is None or the size already fits.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 [T>=1, H, W, 3], got {frames.dtype} {frames.shape}")
    if budget is None:
        return frames
    num_frames, height, width, _ = frames.shape
    size = fitted_size(height, width, num_frames, budget)
    if size == (height, width):
        return frames
    return _resize(frames, *size)


def fit_clip(clip: Clip, budget: VisualBudget | None) -> Clip:
    """``clip`` with its frames fit to ``budget`` and the budget recorded on it
    (``Clip.visual_budget``); ``clip`` itself when ``budget`` is None."""
    if budget is None:
        return clip
    if clip.visual_budget is not None:
        if clip.visual_budget == budget:
            return clip
        raise ValueError(f"clip of {clip.path!r} was already fit to {clip.visual_budget}; "
                         f"fit the decoded clip to {budget} instead")
    return dataclasses.replace(clip, frames=fit_frames(clip.frames, budget), visual_budget=budget)


def tokens_per_frame_pair(height: int, width: int, factor: int) -> int:
    """Visual tokens the language model receives per pair of ``height`` x ``width`` frames (one
    temporal patch): one token per ``factor`` x ``factor`` pixels."""
    height, width, factor = (_positive_int(v, n) for v, n in ((height, "height"), (width, "width"),
                                                              (factor, "factor")))
    if height % factor or width % factor:
        raise ValueError(f"frames of {height}x{width} are not multiples of factor {factor}; "
                         "the processor would resize them first")
    return (height // factor) * (width // factor)


def processor_factor(video_processor) -> int:
    """Patch size times spatial merge of a Qwen-VL video processor: what frame sides must be
    multiples of."""
    return int(video_processor.patch_size) * int(video_processor.merge_size)


def processor_video_kwargs(video_processor, clips: Sequence[Clip]) -> dict:
    """Extra keyword arguments for the processor call that encodes ``clips``.

    ``{}`` when no clip was fit to a budget (the processor resizes as it always did);
    ``{"do_resize": False}`` when all were, so that the processor keeps the frames' size.

    Raises:
        ValueError: some clips fit to a budget and some not, or a fit clip whose sides are not
            multiples of the processor's patch size times merge size.
    """
    fitted = [c.visual_budget is not None for c in clips]
    if not any(fitted):
        return {}
    if not all(fitted):
        raw = [c.path for c, f in zip(clips, fitted) if not f]
        raise ValueError(f"a batch mixes clips fit to a visual budget with clips that are not ({raw[:3]}); "
                         "build every clip of a run with the same budget")
    factor = processor_factor(video_processor)
    for c in clips:
        h, w = c.frames.shape[1:3]
        if h % factor or w % factor:
            raise ValueError(f"clip of {c.path!r} was fit to {c.visual_budget} ({h}x{w}), but this processor "
                             f"needs sides that are multiples of {factor}: set model.visual_budget.factor to "
                             f"{factor} (or a multiple of it)")
    return {"do_resize": False}
