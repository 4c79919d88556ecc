"""Video decoding and encoding for RankVideo.

Reading is done with PyAV. By default :func:`read_clip` first lists every
frame's timestamp by demuxing the packets (no decoding), picks the frames to
keep with the same sampling code the sequential path uses, then seeks to the
keyframe before each kept frame and decodes forward to it. Every decoded
frame is checked against the demuxed list; when the file does not support
this (no timestamps, an announced frame count or duration that the packets
do not match, a seek that lands in the wrong place, ...) the file is read
sequentially instead, packet by packet, as if seeking had never been tried.

We deliberately do not use decord for reading: it trusts the container index,
and on corrupt or partially downloaded files it can crash the whole process,
which takes a data-loader worker down with it. With PyAV every such failure
is a Python exception we can wrap in :class:`VideoReadError` (or, in the seek
path, turn into a fallback to sequential decoding).

For the same reason nothing here trusts the frame count or duration announced
by the container for sampling: they can be 0, missing, or simply wrong (files
that announce 444 frames of which only 68 decode exist in the wild). The seek
path only uses them to decide whether the demuxed packets can be trusted; all
sampling decisions are made from the timestamps of the frames themselves.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np

if TYPE_CHECKING:
    from .visual_budget import VisualBudget

__all__ = ["SAMPLING_RULES", "Clip", "VideoReadError", "official_frame_positions", "read_clip", "write_video"]

logger = logging.getLogger(__name__)

# Everything PyAV/FFmpeg may raise for bad input. FFmpegError covers the
# av.error hierarchy; the builtins cover errors raised by PyAV's Python layer
# (e.g. ValueError for an unsupported pixel format) and by the OS.
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError)

# Timestamps come from integer pts times a rational time base, converted to
# float, while targets are float multiples of 1/fps; a frame that is meant to
# sit exactly on a target can land a hair below it. 0.1 ms is far below any
# real frame interval, so it only absorbs rounding.
_TIME_EPS = 1e-4

# While decoding, at most _BUFFER_FACTOR * max_frames RGB frames are held.
# 2x (rather than e.g. 4x) keeps a 720p, max_frames=32 read under ~180 MB per
# worker while still leaving at least max_frames grid points to pick from.
_BUFFER_FACTOR = 2

# A run of undecodable packets this long means the rest of the stream is
# garbage; stop there and keep what decoded instead of grinding through it.
_MAX_CONSECUTIVE_DECODE_ERRORS = 100


# When the next frame to keep lies in a later GOP, the reader seeks to that
# GOP's keyframe only if this skips more than this many frames; otherwise
# decoding forward costs about the same as the seek and decoder flush.
_SEEK_MIN_SKIP = 8

# How read_clip picks frames: "grid" takes frames on a 1/fps time grid (the
# default); "official" spreads a count derived from the duration uniformly
# over the whole file, as the official RankVideo inference does (through
# qwen-vl-utils). See read_clip and official_frame_positions.
SAMPLING_RULES = ("grid", "official")

# Bounds of the official rule's frame count: at least this many frames, and
# always a multiple of the temporal patch (two frames share one patch).
_OFFICIAL_MIN_FRAMES = 4
_OFFICIAL_FRAME_MULTIPLE = 2

# Paths whose fallback from seeking to sequential decoding was already
# logged as a warning; later fallbacks of the same file log at debug level.
_fallback_warned: set[str] = set()


class VideoReadError(RuntimeError):
    """A video file could not be read; the message names the path, the cause
    and what to do about it."""


@dataclass(frozen=True, eq=False)
class Clip:
    """Frames sampled from a video.

    ``timestamps`` are the sampled frames' own presentation times in seconds,
    ``pts * time_base`` of the video stream, i.e. on the stream's timeline.
    For ordinary files the first frame is at 0.0; files cut from a longer
    stream may start later, and we keep that offset rather than re-zeroing so
    a timestamp can be used to seek back into the same file.
    """

    frames: np.ndarray  # uint8 [T, H, W, 3], RGB
    timestamps: np.ndarray  # float64 [T], seconds, strictly increasing
    native_fps: float  # stream's average frame rate; 0.0 if unknowable
    path: str
    # The budget the frames were resized to (rankvideo.data.visual_budget.fit_clip),
    # or None for frames at their decoded size. Frames fit to a budget must not
    # be resized again by the model's processor.
    visual_budget: VisualBudget | None = None

    def __post_init__(self) -> None:
        # Cheap checks that catch misuse early instead of as a shape error
        # deep inside a model's preprocessing.
        frames, timestamps = self.frames, self.timestamps
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"Clip.frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if timestamps.shape != (frames.shape[0],):
            raise ValueError(f"Clip.timestamps must have shape ({frames.shape[0]},), got {timestamps.shape}")
        if self.visual_budget is not None:
            factor = self.visual_budget.factor
            if frames.shape[1] % factor or frames.shape[2] % factor:
                raise ValueError(
                    f"Clip of {self.path!r} claims frames fit to a visual budget with factor {factor}, "
                    f"but its frames are {frames.shape[1]}x{frames.shape[2]} (not multiples of {factor})"
                )

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


class _Sampler:
    """Picks frames on a regular time grid while they stream past.

    Grid: t0 + k * step, t0 = first timestamp seen. For each target the
    first frame with timestamp >= target is taken; once a frame is taken,
    every target it already covers is skipped, so a frame is never taken
    twice (asking for more than the native rate yields each frame once).

    To bound memory, when the buffer grows past ``cap`` it keeps every other
    frame and doubles ``step``: the buffer is then (approximately) the same
    sampling at half the rate. The final selection (:meth:`pick`) is
    therefore uniform over this thinned grid rather than over the requested
    one.

    The sampler only looks at timestamps: what is stored with each taken
    timestamp (``items``) is up to the caller, the RGB frame when decoding
    sequentially, the frame's position when planning which frames to seek to
    (see :func:`_sample_positions`). Both paths thus select the same frames.
    """

    def __init__(self, fps: float, cap: int) -> None:
        self.step = 1.0 / fps
        self.cap = cap
        self.t0: float | None = None
        self.next_k = 0
        self.items: list = []
        self.times: list[float] = []

    def wants(self, ts: float) -> bool:
        if self.t0 is None:
            self.t0 = ts
        target = self.t0 + self.next_k * self.step
        if ts < target - _TIME_EPS:
            return False
        # The next target is the first grid point strictly after this frame.
        self.next_k = math.floor((ts - self.t0 + _TIME_EPS) / self.step) + 1
        return True

    def add(self, item, ts: float) -> None:
        self.items.append(item)
        self.times.append(ts)
        if len(self.items) > self.cap:
            self._thin()

    def pick(self, max_frames: int) -> list[int]:
        """Indices into ``items`` of the final selection: all of them if
        there are at most ``max_frames``, else ``max_frames`` spread uniformly,
        including the first and the last."""
        n = len(self.items)
        if n <= max_frames:
            return list(range(n))
        return [int(i) for i in np.round(np.linspace(0, n - 1, max_frames)).astype(int)]

    def _thin(self) -> None:
        # [::2] keeps the first frame; since we thin as soon as the buffer
        # holds cap + 1 frames and cap is even, it also keeps the newest one.
        self.items = self.items[::2]
        self.times = self.times[::2]
        self.step *= 2.0
        # Grid point k on the old grid is k / 2 on the new one; the next
        # pending target moves to the first new grid point at or after it.
        self.next_k = (self.next_k + 1) // 2
        logger.debug(
            "thinned sample buffer to %d frames, sampling step now %.4f s",
            len(self.items),
            self.step,
        )


def _sample_positions(times: list[float], fps: float, max_frames: int) -> list[int]:
    """Positions in ``times`` (every frame's timestamp, increasing) of the
    frames the sequential path keeps for these ``fps`` and ``max_frames``."""
    sampler = _Sampler(fps, cap=_BUFFER_FACTOR * max_frames)
    for position, ts in enumerate(times):
        if sampler.wants(ts):
            sampler.add(position, ts)
    return [sampler.items[i] for i in sampler.pick(max_frames)]


def official_frame_positions(num_frames: int, duration_s: float, fps: float = 2.0, max_frames: int = 32) -> list[int]:
    """Positions (0-based, increasing) of the frames the official rule keeps
    from a file of ``num_frames`` frames lasting ``duration_s`` seconds.

    The count is ``duration_s * fps``, raised to at least 4, then capped at
    ``max_frames`` rounded down to an even number and at ``num_frames``, and
    finally rounded down to an even number (two frames share a temporal
    patch). The kept positions are that many points spread evenly from the
    first frame to the last, rounded to the nearest frame (halves to even).
    A single-frame file keeps its one frame.

    Raises:
        ValueError: ``num_frames`` < 1, ``max_frames`` < 2, or a negative or
            non-finite ``duration_s`` or ``fps``.
    """
    if not _is_int(num_frames) or num_frames < 1:
        raise ValueError(f"num_frames must be an integer >= 1, got {num_frames!r}")
    if not _is_int(max_frames) or max_frames < _OFFICIAL_FRAME_MULTIPLE:
        raise ValueError(
            f"the official sampling rule keeps an even number of frames, so max_frames must be an integer "
            f">= {_OFFICIAL_FRAME_MULTIPLE}, got {max_frames!r}"
        )
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
    if num_frames == 1:
        return [0]
    ceiling = max_frames - max_frames % _OFFICIAL_FRAME_MULTIPLE
    count = min(max(duration_s * fps, _OFFICIAL_MIN_FRAMES), ceiling, num_frames)
    count = math.floor(count)
    count -= count % _OFFICIAL_FRAME_MULTIPLE
    return [int(i) for i in np.round(np.linspace(0, num_frames - 1, count)).astype(int)]


def _stream_duration(times: list[float], native_fps: float) -> float:
    """Seconds a stream of frames at ``times`` lasts, as the official rule
    counts it: frames / average frame rate, or, with no known rate, frames
    times the mean interval between their timestamps."""
    n = len(times)
    if native_fps > 0:
        return n / native_fps
    if n > 1 and times[-1] > times[0]:
        return n * (times[-1] - times[0]) / (n - 1)
    return 0.0


def _official_positions(times: list[float], native_fps: float, fps: float, max_frames: int) -> list[int]:
    """Positions in ``times`` (every frame's timestamp) that the official rule keeps."""
    return official_frame_positions(len(times), _stream_duration(times, native_fps), fps, max_frames)


class _TimeLog:
    """A sampler for :func:`_decode` that records every accepted frame's
    timestamp and takes only the first frame (so the pass is cheap and its
    result still holds one decodable frame)."""

    def __init__(self) -> None:
        self.all_times: list[float] = []
        self.items: list = []
        self.times: list[float] = []

    def wants(self, ts: float) -> bool:
        self.all_times.append(ts)
        return len(self.all_times) == 1

    def add(self, item, ts: float) -> None:
        self.items.append(item)
        self.times.append(ts)

    def pick(self, max_frames: int) -> list[int]:
        return list(range(len(self.items)))


class _PositionPicker(_TimeLog):
    """A sampler for :func:`_decode` that takes the accepted frames at the
    given positions (0-based, in the order frames are accepted)."""

    def __init__(self, positions: list[int]) -> None:
        super().__init__()
        self.wanted = set(positions)

    def wants(self, ts: float) -> bool:
        self.all_times.append(ts)
        return len(self.all_times) - 1 in self.wanted


def _is_int(x) -> bool:
    # bool is an Integral, but True as a frame count is surely a bug.
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_file(path: str) -> None:
    # Checked up front so these common cases get a precise message instead of
    # whatever FFmpeg says about them.
    if not os.path.exists(path):
        raise VideoReadError(f"video file {path!r} does not exist; check the path or download it")
    if os.path.isdir(path):
        raise VideoReadError(f"video path {path!r} is a directory; pass a video file inside it")
    if os.path.getsize(path) == 0:
        raise VideoReadError(
            f"video file {path!r} is empty (0 bytes); the download probably failed, fetch it again"
        )


def read_clip(
    path: str | os.PathLike[str],
    fps: float = 2.0,
    max_frames: int = 32,
    *,
    max_decode_frames: int = 200_000,
    timeout_s: float = 120.0,
    seek: bool | None = None,
    sampling: str = "grid",
    threads: int = 1,
) -> Clip:
    """Decode ``path`` and return frames sampled at ``fps`` frames per second.

    ``sampling="grid"`` (default): frames are taken at times 0, 1/fps,
    2/fps, ... after the first decoded frame (the first frame at or after
    each target, no frame twice). If more than ``max_frames`` were taken,
    ``max_frames`` of them are kept, spread uniformly over the taken ones and
    including the first and last. For long videos the decoding buffer is
    thinned to bound memory (see :class:`_Sampler`), so the result is then
    uniform over a coarser grid.

    ``sampling="official"``: the rule of the official RankVideo inference
    (qwen-vl-utils): ``duration * fps`` frames, at least 4, at most
    ``max_frames`` and the file's frame count, rounded down to an even
    number, spread evenly from the first frame to the last (see
    :func:`official_frame_positions`). The duration is the frame count over
    the stream's average frame rate. Files that cannot be read by seeking
    are decoded twice: once to count their frames, once to take them.

    ``seek`` chooses how: ``None`` (default) lists the frames' timestamps by
    demuxing, then seeks to and decodes only the frames kept, falling back to
    sequential decoding (with a warning naming the file and the reason) when
    the file does not allow it; ``False`` always decodes sequentially;
    ``True`` only seeks and raises :class:`VideoReadError` where it would
    fall back. Both ways return the same frames and timestamps.

    ``threads`` > 1 decodes the seek runs of one file on that many threads,
    each with its own decoder (for one long video read at a time; where
    many videos are read at once, e.g. in data-loader workers, 1 keeps the
    cores from being oversubscribed). Frames and timestamps are the same.

    A truncated file whose first frames decode yields those frames (with a
    warning); it is an error only when no frame decodes at all.

    Raises:
        ValueError: invalid ``fps``, ``max_frames``, ``sampling`` or limits
            (the official rule needs ``max_frames`` >= 2).
        VideoReadError: the file is missing, empty, not a video, has no
            decodable frame, or exceeds ``max_decode_frames``/``timeout_s``.
    """
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
    if not _is_int(max_frames) or max_frames < 1:
        raise ValueError(f"max_frames must be an integer >= 1, got {max_frames!r}")
    if not _is_int(max_decode_frames) or max_decode_frames < 1:
        raise ValueError(f"max_decode_frames must be an integer >= 1, got {max_decode_frames!r}")
    if not (timeout_s > 0):
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    if seek not in (None, True, False):
        raise ValueError(f"seek must be None, True or False, got {seek!r}")
    if not _is_int(threads) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if sampling not in SAMPLING_RULES:
        raise ValueError(f"sampling must be one of {', '.join(map(repr, SAMPLING_RULES))}, got {sampling!r}")
    if sampling == "official" and max_frames < _OFFICIAL_FRAME_MULTIPLE:
        raise ValueError(
            f"sampling='official' keeps an even number of frames, so max_frames must be >= "
            f"{_OFFICIAL_FRAME_MULTIPLE}, got {max_frames!r}"
        )

    path = os.fspath(path)
    _check_file(path)
    deadline = time.monotonic() + float(timeout_s)

    if seek is not False:
        with _open(path) as container:
            stream = _video_stream(path, container)
            try:
                return _read_by_seeking(
                    path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s, sampling,
                    threads,
                )
            except _SeekUnsupported as exc:
                if seek:
                    raise VideoReadError(
                        f"video file {path!r} cannot be read by seeking: {exc}; "
                        "read it with seek=None to decode it sequentially"
                    ) from exc
                _log_fallback(path, str(exc))
    if sampling == "official":
        return _decode_official(path, fps, max_frames, max_decode_frames, deadline, timeout_s)
    # A fresh container, so the sequential read is exactly what it would be
    # had seeking never been tried.
    with _open(path) as container:
        stream = _video_stream(path, container)
        # Decoder threading is left at PyAV's default on purpose: readers run
        # in many data-loader workers at once, and per-video auto threading
        # would spawn (workers x cores) threads and oversubscribe the CPUs.
        return _decode(path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s)


def _open(path: str):
    """Open ``path`` with PyAV, wrapping failure in :class:`VideoReadError`."""
    try:
        # metadata_errors="ignore": badly encoded title/comment tags are common
        # in scraped videos and must not make the pixels unreadable.
        return av.open(path, metadata_errors="ignore")
    except _AV_ERRORS as exc:
        raise VideoReadError(
            f"cannot open video file {path!r} ({type(exc).__name__}: {exc}); it is not a readable "
            "media file (corrupt, truncated before its header, or not a video): re-download or re-encode it"
        ) from exc


def _video_stream(path: str, container):
    """The first video stream of ``container``, which must be decodable."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoReadError(
            f"video file {path!r} has no video stream (streams found: {', '.join(kinds)}); "
            "supply a file with a video track (if it should have one, it is probably truncated "
            "or corrupt: re-download it)"
        )
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoReadError(
            f"video file {path!r}: no decoder available for its video codec; re-encode it to H.264"
        )
    return stream


def _log_fallback(path: str, reason: str) -> None:
    """Say that ``path`` is decoded sequentially and why: a warning the first
    time for each file in this process, at debug level afterwards."""
    level = logging.DEBUG if path in _fallback_warned else logging.WARNING
    _fallback_warned.add(path)
    logger.log(level, "video file %r: cannot read it by seeking (%s); decoding it sequentially instead", path, reason)


# ------------------------------------------------------------- seek path


class _SeekUnsupported(Exception):
    """Seeking cannot be trusted to give what sequential decoding gives for
    this file; the message says why. Makes read_clip fall back."""


@dataclass(frozen=True)
class _FrameIndex:
    """Every frame of a video stream, from its demuxed packets.

    ``pts`` lists the frames' presentation timestamps (stream time base) in
    increasing order, i.e. the order the decoder outputs them. For the frame
    at position i, decoding must start at the keyframe at position
    ``start[i]`` to produce it. ``reorder`` is how many frames a decoder
    must hold back to output them in that order.
    """

    pts: list[int]
    start: list[int]
    position: dict[int, int]  # pts -> position in ``pts``
    reorder: int


def _read_by_seeking(
    path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s, sampling="grid", threads=1
) -> Clip:
    """Read the frames the sequential path would keep, by seeking to each.

    Raises _SeekUnsupported when the file does not allow it, VideoReadError
    for the time budget and the frame limit (as the sequential path does).
    """

    def check_budget() -> None:
        if time.monotonic() > deadline:
            raise VideoReadError(
                f"reading video file {path!r} exceeded the {timeout_s:g} s time budget while "
                "seeking to its frames; the file may be huge or pathological: "
                "re-encode it shorter or raise timeout_s"
            )

    time_base = stream.time_base
    if not time_base:
        raise _SeekUnsupported("its video stream has no time base")
    check_budget()
    index = _index_frames(path, container, stream, max_decode_frames, check_budget)
    # A decoder that does not know the reordering depth up front (from the
    # stream headers) learns it from frames that come out of order, and drops
    # those: where that happens depends on what it decoded before.
    depth = stream.codec_context.reorder_depth
    if depth < index.reorder:
        raise _SeekUnsupported(
            f"its frames need a reordering depth of {index.reorder} but its headers declare {depth}"
        )
    times = _seconds(index.pts, time_base)
    # Same rule as the sequential path (see _decode).
    native_fps = float(stream.average_rate) if stream.average_rate else 0.0
    if native_fps <= 0 and len(times) > 1 and times[-1] > times[0]:
        native_fps = (len(times) - 1) / (times[-1] - times[0])
    if sampling == "official":
        keep = _official_positions(times, native_fps, fps, max_frames)
    else:
        keep = _sample_positions(times, fps, max_frames)
    frames = _decode_positions(path, container, stream, index, keep, check_budget, threads)

    return Clip(
        frames=np.stack(frames),
        timestamps=np.asarray([times[i] for i in keep], dtype=np.float64),
        native_fps=native_fps,
        path=path,
    )


def _seconds(pts: list[int], time_base) -> list[float]:
    """``float(pts * time_base)`` for every pts: the correctly rounded quotient of two integers.
    In float64 while both are exact there (below 2**53), the same numbers, much faster."""
    num, den = time_base.numerator, time_base.denominator
    if pts and max(abs(min(pts)), abs(max(pts))) * abs(num) < 2**53 and den < 2**53:
        return (np.asarray(pts, dtype=np.float64) * num / den).tolist()
    return [float(x * time_base) for x in pts]


def _index_frames(path, container, stream, max_decode_frames, check_budget) -> _FrameIndex:
    """Demux every packet of ``stream`` (without decoding) into a
    :class:`_FrameIndex`, checking that the packets describe the whole
    stream as the decoder will see it; raises _SeekUnsupported if not."""
    packets: list[tuple[int, bool, int]] = []  # (pts, is_keyframe, duration), decode order
    last_dts = None
    try:
        for packet in container.demux(stream):
            check_budget()
            if packet.size == 0:  # the empty packet PyAV yields at the end, to flush the decoder
                continue
            if packet.pts is None:
                raise _SeekUnsupported("a packet of its video stream has no timestamp")
            if packet.is_corrupt:
                raise _SeekUnsupported("a packet is incomplete or corrupt (the file is probably truncated)")
            if packet.is_discard:
                raise _SeekUnsupported("the container marks some frames to be discarded (edit list)")
            if packet.dts is not None:
                if last_dts is not None and packet.dts <= last_dts:
                    raise _SeekUnsupported("the packets' decoding timestamps are not increasing")
                last_dts = packet.dts
            packets.append((packet.pts, bool(packet.is_keyframe), packet.duration or 0))
            if len(packets) > max_decode_frames:
                raise VideoReadError(
                    f"video file {path!r} has more than max_decode_frames={max_decode_frames} frames; "
                    "refusing to continue (possibly a pathological file): re-encode it or raise the limit"
                )
    except _AV_ERRORS as exc:
        raise _SeekUnsupported(f"demuxing failed: {type(exc).__name__}: {exc}") from exc

    if not packets:
        raise _SeekUnsupported("its video stream has no packets")
    if stream.frames and stream.frames != len(packets):
        raise _SeekUnsupported(
            f"the container announces {stream.frames} frames but {len(packets)} packets demux "
            "(the file is probably truncated)"
        )
    pts = sorted(p for p, _, _ in packets)
    if any(b <= a for a, b in zip(pts, pts[1:])):
        raise _SeekUnsupported("two packets have the same presentation timestamp")
    _check_duration(container, stream, pts, packets)
    position = {p: i for i, p in enumerate(pts)}
    return _FrameIndex(
        pts=pts,
        start=_decode_starts(packets, position),
        position=position,
        reorder=_reorder_depth([position[p] for p, _, _ in packets]),
    )


def _reorder_depth(ranks: list[int]) -> int:
    """How many frames a decoder must hold back to output, in presentation
    order, frames fed in this decode order (``ranks``: each packet's
    position in presentation order, 0..n-1). Frame r is fed as the
    (d+1)-th packet; with a delay of D frames, r is due out once r + D + 1
    packets are fed, so D must be at least d - r."""
    return max([0] + [d - r for d, r in enumerate(ranks)])


def _check_duration(container, stream, pts: list[int], packets) -> None:
    """Raise _SeekUnsupported unless the demuxed frames span the duration
    the container announces (within two frame intervals): a shorter span
    means frames are missing, typically from a truncated file."""
    time_base = stream.time_base
    if len(pts) > 1:
        frame_dt = float((pts[-1] - pts[0]) * time_base) / (len(pts) - 1)
    else:
        frame_dt = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
    last_duration = max(d for p, _, d in packets if p == pts[-1]) or frame_dt / float(time_base)
    first = float(pts[0] * time_base)
    end = float((pts[-1] + last_duration) * time_base)
    tolerance = 2.0 * frame_dt + _TIME_EPS
    if stream.duration:
        announced = float(stream.duration * time_base)
        if abs((end - first) - announced) <= tolerance:
            return
    elif container.duration:
        # Containers differ on whether their duration counts from 0 or from
        # the first timestamp (Matroska: from 0), so accept either.
        announced = container.duration / av.time_base
        if min(abs(end - first - announced), abs(end - announced)) <= tolerance:
            return
    else:
        raise _SeekUnsupported("the container does not announce a duration")
    raise _SeekUnsupported(
        f"its frames span {end - first:.3f} s but the container announces {announced:.3f} s "
        "(the file is probably truncated, or its index is wrong)"
    )


def _decode_starts(packets, position: dict[int, int]) -> list[int]:
    """For each frame position, the position of the keyframe decoding must
    start from: the last keyframe before its packet in decode order, or the
    one before that for a frame shown before that keyframe (a leading frame
    of an open GOP, which may reference the previous GOP)."""
    start = [0] * len(position)
    key = previous_key = None
    for pts, is_keyframe, _ in packets:
        if is_keyframe:
            previous_key, key = key, pts
        if key is None:
            raise _SeekUnsupported("its first packet is not a keyframe")
        frame_key = key if pts >= key else previous_key
        if frame_key is None:
            raise _SeekUnsupported("its first frames need a keyframe that precedes the file")
        start[position[pts]] = position[frame_key]
    return start


def _seek_runs(index: _FrameIndex, keep: list[int]) -> list[list[int]]:
    """Split positions ``keep`` (increasing) into runs: each run starts with a
    seek to its first frame's keyframe and decodes forward through the rest;
    a seek is made only when it skips more than ``_SEEK_MIN_SKIP`` frames."""
    runs: list[list[int]] = []
    for target in keep:
        if not runs or index.start[target] - runs[-1][-1] > _SEEK_MIN_SKIP:
            runs.append([target])
        else:
            runs[-1].append(target)
    return runs


def _split_runs(index: _FrameIndex, runs: list[list[int]], parts: int) -> list[list[list[int]]]:
    """Cut ``runs`` into at most ``parts`` consecutive chunks of about equal
    decoding work (frames decoded from each run's keyframe to its last frame)."""
    cost = [run[-1] - index.start[run[0]] + 1 for run in runs]
    share = sum(cost) / parts
    chunks: list[list[list[int]]] = [[] for _ in range(parts)]
    done = 0
    for run, c in zip(runs, cost):
        # A run goes to the chunk its middle falls in, so chunks stay in order.
        chunks[min(parts - 1, int((done + c / 2) // share))].append(run)
        done += c
    return [chunk for chunk in chunks if chunk]


def _decode_positions(
    path, container, stream, index: _FrameIndex, keep: list[int], check_budget, threads: int = 1
) -> list[np.ndarray]:
    """Decode the frames at positions ``keep`` (increasing) to RGB by seek
    runs (see :func:`_seek_runs`); raise _SeekUnsupported when a decoded
    frame is not the one expected.

    With ``threads`` > 1 the runs are split into that many consecutive
    chunks, each decoded by its own thread from its own opening of the file
    (the first chunk on ``container``). A file whose frames do not all
    decode to one size is then refused (read sequentially instead), since
    each chunk only sees its own first frame."""
    runs = _seek_runs(index, keep)
    depth = stream.codec_context.reorder_depth
    chunks = _split_runs(index, runs, max(1, min(int(threads), len(runs))))
    if len(chunks) == 1:
        return _decode_runs(container, stream, index, runs, depth, check_budget)

    def decode_chunk(chunk):
        with _open(path) as own:
            own_stream = _video_stream(path, own)
            return _decode_runs(own, own_stream, index, chunk, depth, check_budget)

    with ThreadPoolExecutor(max_workers=len(chunks) - 1, thread_name_prefix="read_clip") as pool:
        rest = [pool.submit(decode_chunk, chunk) for chunk in chunks[1:]]
        try:
            rgb = _decode_runs(container, stream, index, chunks[0], depth, check_budget)
        finally:
            # Every thread is waited for, so no decoder outlives the call.
            results = [future.exception() or future.result() for future in rest]
    for result in results:
        if isinstance(result, BaseException):
            if isinstance(result, VideoReadError):
                raise result
            raise _SeekUnsupported(f"decoding after a seek failed: {type(result).__name__}: {result}") from result
        rgb.extend(result)
    if len({frame.shape for frame in rgb}) > 1:
        raise _SeekUnsupported("its frames do not all have one size (read by threads)")
    return rgb


def _decode_runs(container, stream, index: _FrameIndex, runs: list[list[int]], depth: int, check_budget) -> list[np.ndarray]:
    """Decode ``runs`` (see :func:`_seek_runs`) with ``container``'s decoder,
    converting each kept frame to RGB at the size of the first one."""
    rgb: list[np.ndarray] = []
    codec = stream.codec_context
    out_size: tuple[int, int] | None = None
    try:
        for run in runs:
            start = index.start[run[0]]
            container.seek(index.pts[start], backward=True, stream=stream)
            # PyAV warns that a flush may reset the decoder's reordering
            # depth; keep the one the file started with (checked sufficient).
            if codec.reorder_depth < depth:
                codec.reorder_depth = depth
            frames = container.decode(stream)
            pos = None  # right after a seek
            try:
                for target in run:
                    frame, pos = _decode_to(frames, index, target, index.start[target], pos, check_budget)
                    if out_size is None:
                        out_size = (frame.width, frame.height)
                    # Same conversion as the sequential path, so pixels are identical.
                    w, h = out_size
                    rgb.append(frame.to_ndarray(format="rgb24", width=w, height=h))
            finally:
                frames.close()
    except _AV_ERRORS as exc:
        raise _SeekUnsupported(f"decoding after a seek failed: {type(exc).__name__}: {exc}") from exc
    return rgb


def _decode_to(frames, index: _FrameIndex, target: int, start: int, pos: int | None, check_budget):
    """Advance ``frames`` to the frame at position ``target``; return it and
    its position. Every frame on the way must be the next one in ``index``
    and decode without errors; the first after a seek (``pos`` None) must be
    a keyframe at or before position ``start``."""
    for frame in frames:
        check_budget()
        p = index.position.get(frame.pts) if frame.pts is not None else None
        if p is None:
            raise _SeekUnsupported(f"a decoded frame has timestamp {frame.pts}, which no packet has")
        if frame.is_corrupt:
            # The decoder concealed damage, using whatever it decoded before;
            # after a seek that differs from a sequential decode.
            raise _SeekUnsupported(f"the frame at pts {frame.pts} decoded with errors")
        if pos is None:
            if not frame.key_frame or p > start:
                raise _SeekUnsupported(
                    f"a seek meant to reach the keyframe at pts {index.pts[start]} landed at pts {frame.pts}"
                )
        elif p != pos + 1:
            raise _SeekUnsupported(
                f"decoding gave the frame at pts {frame.pts} where pts {index.pts[pos + 1]} was expected"
            )
        pos = p
        if p == target:
            return frame, pos
    raise _SeekUnsupported(f"the frame at pts {index.pts[target]} did not decode (the file is probably truncated)")


# ------------------------------------------------------- sequential path


def _decode_official(path, fps, max_frames, max_decode_frames, deadline, timeout_s) -> Clip:
    """The official rule's frames, decoding sequentially: a first pass lists
    the timestamps of the frames that decode, a second takes the kept ones."""
    with _open(path) as container:
        stream = _video_stream(path, container)
        counted = _TimeLog()
        first = _decode(path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s,
                        sampler=counted, warn=False)
    keep = _official_positions(counted.all_times, first.native_fps, fps, max_frames)
    with _open(path) as container:
        stream = _video_stream(path, container)
        return _decode(path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s,
                       sampler=_PositionPicker(keep))


def _decode(
    path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s, *, sampler=None, warn=True
) -> Clip:
    """Demux and decode ``stream`` packet by packet, sampling as we go.

    ``sampler`` decides which frames to keep (default: the time grid of
    :class:`_Sampler`); ``warn=False`` logs the notes about damaged files
    at debug level (for a pass whose frames are read again)."""
    if sampler is None:
        sampler = _Sampler(fps, cap=_BUFFER_FACTOR * max_frames)
    time_base = stream.time_base
    rates = [r for r in (stream.average_rate, stream.guessed_rate) if r]
    # Only used to invent a time for a frame without pts (rare: raw
    # elementary streams); any positive value keeps timestamps increasing.
    fallback_dt = 1.0 / float(rates[0]) if rates else 1.0 / fps

    decoded = 0  # frames the decoder produced, the hang guard counts these
    accepted = 0  # frames with a usable, increasing timestamp
    first_ts: float | None = None
    last_ts: float | None = None
    out_size: tuple[int, int] | None = None
    dropped_ts = 0
    packet_errors = 0  # packets skipped because they failed to decode
    consecutive_errors = 0
    last_error: BaseException | None = None
    ended_early = False  # demuxing stopped on an error rather than at EOF

    def check_budget() -> None:
        if time.monotonic() > deadline:
            raise VideoReadError(
                f"reading video file {path!r} exceeded the {timeout_s:g} s time budget after "
                f"{decoded} frames; the file may be huge or pathological: "
                "re-encode it shorter or raise timeout_s"
            )

    def handle(frame) -> None:
        nonlocal decoded, accepted, first_ts, last_ts, out_size, dropped_ts
        decoded += 1
        if decoded > max_decode_frames:
            raise VideoReadError(
                f"video file {path!r} decoded more than max_decode_frames={max_decode_frames} frames; "
                "refusing to continue (possibly a pathological file): re-encode it or raise the limit"
            )
        # Computed from the stream's time base rather than frame.time: frames
        # flushed out of the codec context carry no time base of their own,
        # and frame.time is then NaN.
        ts = float(frame.pts * time_base) if frame.pts is not None and time_base else math.nan
        if not math.isfinite(ts):
            ts = 0.0 if last_ts is None else last_ts + fallback_dt
        # Broken muxing can repeat or reorder timestamps; such frames are
        # dropped so the returned timestamps are strictly increasing.
        if last_ts is not None and ts <= last_ts:
            dropped_ts += 1
            return
        if first_ts is None:
            first_ts = ts
        last_ts = ts
        accepted += 1
        if not sampler.wants(ts):
            return
        if out_size is None:
            out_size = (frame.width, frame.height)
        # Resize only if the resolution changes mid-stream, so all frames stack.
        w, h = out_size
        sampler.add(frame.to_ndarray(format="rgb24", width=w, height=h), ts)

    try:
        for packet in container.demux(stream):
            check_budget()
            try:
                frames = packet.decode()
            except _AV_ERRORS as exc:
                # One corrupt packet should not cost the rest of the video.
                packet_errors += 1
                consecutive_errors += 1
                last_error = exc
                if consecutive_errors > _MAX_CONSECUTIVE_DECODE_ERRORS:
                    ended_early = True
                    break
                continue
            consecutive_errors = 0
            for frame in frames:
                handle(frame)
                check_budget()
    except _AV_ERRORS as exc:
        # Demuxing (or converting a frame) failed mid-file, typically data
        # missing at the end of a partial download. The decoder may still hold complete frames
        # from earlier packets; flush them out, they are valid.
        ended_early = True
        last_error = exc
        try:
            for frame in stream.codec_context.decode(None):
                handle(frame)
        except _AV_ERRORS:
            pass

    if not sampler.items:
        detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
        raise VideoReadError(
            f"no video frame could be decoded from {path!r}{detail}; the file is corrupt or "
            "truncated: re-download or re-encode it"
        )
    # The first of two passes reads the same damage again; it says nothing.
    report = logger.warning if warn else logger.debug
    if ended_early:
        report(
            "video file %r ended early (%s: %s), probably truncated; using the %d frames decoded before that",
            path,
            type(last_error).__name__,
            last_error,
            decoded,
        )
    elif stream.frames and decoded < stream.frames:
        # A truncated mp4 whose index sits at the front (faststart) ends
        # without any error: the demuxer just reaches EOF. The announced
        # frame count is unreliable, so it only feeds this warning and
        # never the sampling.
        report(
            "video file %r: only %d of the %d frames its container announces decoded; "
            "the file is probably truncated (partial download)",
            path,
            decoded,
            stream.frames,
        )
    if packet_errors:
        report("video file %r: %d packets failed to decode and were skipped", path, packet_errors)
    if dropped_ts:
        report("video file %r: dropped %d frames with non-increasing timestamps", path, dropped_ts)

    keep = sampler.pick(max_frames)
    frames_list = [sampler.items[i] for i in keep]
    times = [sampler.times[i] for i in keep]

    # average_rate is what FFmpeg measured/declared for the stream; when it
    # is missing (some raw or broken streams) the decoded timestamps are the
    # only trustworthy source.
    native_fps = float(stream.average_rate) if stream.average_rate else 0.0
    if native_fps <= 0 and accepted > 1 and last_ts > first_ts:
        native_fps = (accepted - 1) / (last_ts - first_ts)

    return Clip(
        frames=np.stack(frames_list),
        timestamps=np.asarray(times, dtype=np.float64),
        native_fps=native_fps,
        path=path,
    )


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: int, *, crf: int = 18,
                audio: np.ndarray | None = None, audio_rate: int = 16000) -> None:
    """Encode ``frames`` (uint8 [T, H, W, 3] RGB, H and W even) as H.264 mp4.

    ``audio``: an optional mono sound track (int16 samples at ``audio_rate`` Hz), encoded as AAC
    after the video stream (the embedded world's narration); without it the file has no audio
    stream and its bytes are what they were before this option existed.

    The output is byte-identical for identical input on the same machine
    (single-threaded x264, no wall-clock metadata), so written fixtures and
    caches can be compared by hash. The file appears atomically: it is
    written under a temporary name in the same folder and renamed into place,
    so a crash never leaves a half-written video under the final name.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 [T>=1, H, W, 3], got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    # yuv420p subsamples chroma 2x2, so x264 rejects odd sizes; say so here.
    if height % 2 or width % 2:
        raise ValueError(f"H.264/yuv420p needs even height and width, got {height}x{width}")
    if not _is_int(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    if not _is_int(crf) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an integer in [0, 51], got {crf!r}")

    final = Path(os.fspath(path))
    final.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, unique name in the same folder: os.replace is only atomic
    # within one file system, and concurrent writers must not collide.
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        # format is explicit because the temporary suffix says nothing;
        # faststart puts the index first so partial downloads stay playable.
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=int(fps))
            stream.width = width
            stream.height = height
            stream.pix_fmt = "yuv420p"
            # x264 output depends on its thread count; pinning one thread
            # makes the bytes independent of the machine's core count.
            stream.thread_count = 1
            # asm=0: x264's SIMD kernels read bytes outside the frame that are never initialised,
            # so encodes of the same frames could differ; the C kernels give the same bytes every
            # time and cost little at the benchmark's sizes (measured: docs/findings.md).
            stream.options = {"crf": str(int(crf)), "threads": "1", "x264-params": "asm=0"}
            # Every stream is added before the first packet is muxed (the header is written then).
            audio_stream = _add_audio_stream(container, int(audio_rate)) if audio is not None else None
            for i, rgb in enumerate(frames):
                # Convert to yuv420p ourselves instead of handing RGB to
                # encode(): with PyAV 18 the encoder's internal conversion
                # made x264's output vary between calls in one process; the
                # explicit conversion gives identical bytes (docs/findings.md).
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))  # flush delayed frames
            if audio_stream is not None:
                _mux_audio(container, audio_stream, np.asarray(audio), int(audio_rate))
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def _add_audio_stream(container, rate: int):
    stream = container.add_stream("aac", rate=rate)
    stream.layout = "mono"
    stream.options = {"b": "64k"}
    return stream


def _mux_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    """Encode int16 mono ``samples`` into the AAC ``stream`` of ``container``."""
    if samples.dtype != np.int16 or samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"audio must be non-empty int16 mono samples, got {samples.dtype} {samples.shape}")
    step = 1024  # AAC's frame size
    for start in range(0, samples.size, step):
        chunk = samples[start:start + step]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.reshape(1, -1)), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
