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
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

__all__ = ["Clip", "VideoReadError", "read_clip", "write_video"]

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

    def __post_init__(self) -> None:
        # Cheap checks that catch misuse early instead of as a shape error
        # deep inside a model's preprocessing.
        frames, timestamps = self.frames, self.timestamps
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"Clip.frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if timestamps.shape != (frames.shape[0],):
            raise ValueError(f"Clip.timestamps must have shape ({frames.shape[0]},), got {timestamps.shape}")

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
) -> Clip:
    """Decode ``path`` and return frames sampled at ``fps`` frames per second.

    Frames are taken at times 0, 1/fps, 2/fps, ... after the first decoded
    frame (the first frame at or after each target, no frame twice). If more
    than ``max_frames`` were taken, ``max_frames`` of them are kept, spread
    uniformly over the taken ones and including the first and last. For long
    videos the decoding buffer is thinned to bound memory (see
    :class:`_Sampler`), so the result is then uniform over a coarser grid.

    A truncated file whose first frames decode yields those frames (with a
    warning); it is an error only when no frame decodes at all.

    Raises:
        ValueError: invalid ``fps``, ``max_frames`` or limits.
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

    path = os.fspath(path)
    _check_file(path)
    deadline = time.monotonic() + float(timeout_s)

    try:
        # metadata_errors="ignore": badly encoded title/comment tags are common
        # in scraped videos and must not make the pixels unreadable.
        container = av.open(path, metadata_errors="ignore")
    except _AV_ERRORS as exc:
        raise VideoReadError(
            f"cannot open video file {path!r} ({type(exc).__name__}: {exc}); it is not a readable "
            "media file (corrupt, truncated before its header, or not a video): re-download or re-encode it"
        ) from exc

    with container:
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
        # Decoder threading is left at PyAV's default on purpose: readers run
        # in many data-loader workers at once, and per-video auto threading
        # would spawn (workers x cores) threads and oversubscribe the CPUs.
        clip = _decode(path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s)
    return clip


def _decode(path, container, stream, fps, max_frames, max_decode_frames, deadline, timeout_s) -> Clip:
    """Demux and decode ``stream`` packet by packet, sampling as we go."""
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
    if ended_early:
        logger.warning(
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
        logger.warning(
            "video file %r: only %d of the %d frames its container announces decoded; "
            "the file is probably truncated (partial download)",
            path,
            decoded,
            stream.frames,
        )
    if packet_errors:
        logger.warning("video file %r: %d packets failed to decode and were skipped", path, packet_errors)
    if dropped_ts:
        logger.warning("video file %r: dropped %d frames with non-increasing timestamps", path, dropped_ts)

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


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: int, *, crf: int = 18) -> None:
    """Encode ``frames`` (uint8 [T, H, W, 3] RGB, H and W even) as H.264 mp4.

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
            # which made about 1 in 100 encodes of the same frames differ (measured on the
            # embedded benchmark: 1+ extra variants per 120 encodes with asm, 0 in 480 without).
            # The C kernels cost little at the benchmark's sizes and give the same bytes every time.
            stream.options = {"crf": str(int(crf)), "threads": "1", "x264-params": "asm=0"}
            for i, rgb in enumerate(frames):
                # Convert to yuv420p ourselves instead of handing RGB to
                # encode(): with PyAV 18 the encoder's internal conversion
                # made x264's output vary between calls in one process (3
                # distinct files in 60 writes after interleaved reads); the
                # explicit conversion gave identical bytes every time.
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))  # flush delayed frames
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
