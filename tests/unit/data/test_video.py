"""Tests for rankvideo.data.video: real encodes and decodes of tiny clips.

Every clip is written by write_video (or PyAV directly, for shapes
write_video deliberately does not produce) into pytest's tmp_path, so the
tests need no fixtures on disk and no network.
"""

from __future__ import annotations

import logging
import os

import av
import numpy as np
import pytest

from rankvideo.data import video
from rankvideo.data.video import Clip, VideoReadError, read_clip, write_video

H, W = 32, 48  # small but even, so encoding 100 frames takes milliseconds
LOGGER = "rankvideo.data.video"


def colour(i: int, native_fps: int = 10) -> tuple[int, int, int]:
    """Solid colour of frame i: red steps once per second, green once per
    frame within the second, so a decoded colour identifies its frame. Steps
    of 25 are far above H.264's error on flat frames (a few levels)."""
    second, sub = divmod(i, native_fps)
    return (second * 25, sub * 25, 128)


def make_frames(n: int, native_fps: int = 10) -> np.ndarray:
    frames = np.empty((n, H, W, 3), np.uint8)
    for i in range(n):
        frames[i] = colour(i, native_fps)
    return frames


def frame_index(rgb: np.ndarray, native_fps: int = 10) -> int:
    """Invert colour(): which written frame does a decoded frame show?"""
    r, g, _ = rgb.reshape(-1, 3).mean(axis=0)
    return int(round(r / 25)) * native_fps + int(round(g / 25))


@pytest.fixture
def clip5s(tmp_path):
    """5 s at 10 fps (50 frames)."""
    path = tmp_path / "clip5s.mp4"
    frames = make_frames(50)
    write_video(path, frames, 10)
    return path, frames


@pytest.fixture
def clip10s(tmp_path):
    """10 s at 10 fps (100 frames)."""
    path = tmp_path / "clip10s.mp4"
    write_video(path, make_frames(100), 10)
    return path


# --------------------------------------------------------------------- reading


def test_read_at_2fps_gives_half_second_grid_and_right_colours(clip5s):
    path, written = clip5s
    clip = read_clip(path, fps=2.0, max_frames=32)

    assert isinstance(clip, Clip)
    assert clip.path == str(path)
    assert clip.num_frames == 10
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (10, H, W, 3)
    assert clip.timestamps.dtype == np.float64
    # One native frame (0.1 s) of tolerance, as promised to callers.
    np.testing.assert_allclose(clip.timestamps, np.arange(10) * 0.5, atol=0.1)
    assert np.all(np.diff(clip.timestamps) > 0)
    assert clip.native_fps == pytest.approx(10.0)

    for frame, ts in zip(clip.frames, clip.timestamps):
        expected = written[int(round(ts * 10))]
        assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 8


def test_targets_take_first_frame_at_or_after_each_target(clip5s):
    # 3 fps over 10 fps: targets 0, 1/3, 2/3, 1, ... are hit by the frames at
    # 0, 0.4, 0.7, 1.0, ... (the first frame whose time is >= the target).
    path, _ = clip5s
    clip = read_clip(path, fps=3.0, max_frames=100)
    expected = np.array([0.0, 0.4, 0.7, 1.0, 1.4, 1.7, 2.0, 2.4, 2.7, 3.0, 3.4, 3.7, 4.0, 4.4, 4.7])
    np.testing.assert_allclose(clip.timestamps, expected, atol=1e-6)
    assert [frame_index(f) for f in clip.frames] == [int(round(t * 10)) for t in expected]


def test_max_frames_keeps_a_uniform_subset_including_start_and_end(clip5s):
    path, _ = clip5s
    clip = read_clip(path, fps=10.0, max_frames=4)
    assert clip.num_frames == 4
    ts = clip.timestamps
    assert ts[0] == pytest.approx(0.0)
    # With max_frames=4 the decode buffer (cap 2*4) gets thinned to a 0.8 s
    # grid, so the last pick is the last grid point (4.8 s), i.e. within one
    # thinned step of the clip's last frame at 4.9 s.
    assert ts[-1] == pytest.approx(4.8, abs=1e-6)
    np.testing.assert_allclose(np.diff(ts), 1.6, atol=1e-6)  # evenly spread
    assert [frame_index(f) for f in clip.frames] == [0, 16, 32, 48]


def test_max_frames_without_thinning_includes_the_very_last_frame(clip5s):
    # 2 fps picks 10 frames, under the buffer cap of 2*8: plain linspace.
    path, _ = clip5s
    clip = read_clip(path, fps=2.0, max_frames=8)
    idx = np.round(np.linspace(0, 9, 8)).astype(int)
    np.testing.assert_allclose(clip.timestamps, idx * 0.5, atol=1e-6)


def test_fps_above_native_rate_yields_every_frame_once(clip5s):
    path, written = clip5s
    clip = read_clip(path, fps=25.0, max_frames=1000)
    assert clip.num_frames == len(written)
    np.testing.assert_allclose(clip.timestamps, np.arange(50) / 10, atol=1e-6)
    assert len(np.unique(clip.timestamps)) == clip.num_frames
    assert [frame_index(f) for f in clip.frames] == list(range(50))


def test_long_clip_thins_buffer_and_stays_bounded(clip10s, caplog):
    # max_frames=2 -> buffer cap 4. Taking every 0.1 s frame, the buffer hits
    # 5 frames and is halved (step doubles) again and again: grids of 0.2,
    # 0.4, 0.8, 1.6, 3.2 s. The final buffer is [0, 3.2, 6.4, 9.6] and the
    # uniform pick of 2 is its first and last frame.
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    clip = read_clip(clip10s, fps=10.0, max_frames=2)
    assert clip.num_frames == 2
    np.testing.assert_allclose(clip.timestamps, [0.0, 9.6], atol=1e-6)
    assert [frame_index(f) for f in clip.frames] == [0, 96]

    thin_logs = [r.getMessage() for r in caplog.records if "thinned sample buffer" in r.getMessage()]
    assert len(thin_logs) == 5
    # After each thinning the buffer holds 3 frames: never more than cap + 1.
    assert all("to 3 frames" in m for m in thin_logs)


def test_accepts_pathlike_and_reports_str_path(clip5s):
    path, _ = clip5s
    assert read_clip(os.fspath(path)).path == read_clip(path).path == str(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": 0},
        {"fps": -1.0},
        {"fps": float("nan")},
        {"fps": float("inf")},
        {"max_frames": 0},
        {"max_frames": 2.5},
    ],
)
def test_invalid_arguments_raise_value_error(clip5s, kwargs):
    path, _ = clip5s
    with pytest.raises(ValueError):
        read_clip(path, **kwargs)


def test_decode_frame_limit_raises(clip5s):
    path, _ = clip5s
    with pytest.raises(VideoReadError, match="max_decode_frames=5") as info:
        read_clip(path, max_decode_frames=5)
    assert str(path) in str(info.value)


def test_time_budget_raises(clip5s):
    path, _ = clip5s
    with pytest.raises(VideoReadError, match="time budget") as info:
        read_clip(path, timeout_s=1e-9)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ bad inputs


def _write_audio(path, codec: str, fmt: str) -> None:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=16000)
        sample_fmt, dtype = ("fltp", np.float32) if codec == "aac" else ("s16", np.int16)
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype), format=sample_fmt, layout="mono")
            frame.sample_rate = 16000
            frame.pts = k * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _bad_missing(tmp_path, good):
    return tmp_path / "does_not_exist.mp4"


def _bad_directory(tmp_path, good):
    d = tmp_path / "a_dir.mp4"
    d.mkdir()
    return d


def _bad_empty(tmp_path, good):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    return p


def _bad_text(tmp_path, good):
    p = tmp_path / "text.mp4"
    p.write_text("this is not a video, it is an HTML error page\n" * 20)
    return p


def _bad_head_200(tmp_path, good):
    p = tmp_path / "head200.mp4"
    p.write_bytes(good.read_bytes()[:200])
    return p


@pytest.mark.parametrize(
    "make_bad",
    [_bad_missing, _bad_directory, _bad_empty, _bad_text, _bad_head_200],
    ids=lambda f: f.__name__[5:],
)
def test_bad_files_raise_video_read_error_naming_the_path(tmp_path, clip5s, make_bad):
    bad = make_bad(tmp_path, clip5s[0])
    with pytest.raises(VideoReadError) as info:
        read_clip(bad)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize(("codec", "fmt", "name"), [("pcm_s16le", "wav", "a.wav"), ("aac", "mp4", "a.mp4")])
def test_audio_only_file_has_no_video_stream(tmp_path, codec, fmt, name):
    path = tmp_path / name
    _write_audio(path, codec, fmt)
    with pytest.raises(VideoReadError, match="no video stream") as info:
        read_clip(path)
    assert str(path) in str(info.value)


def test_truncated_faststart_mp4_returns_its_decodable_prefix(tmp_path, clip5s, caplog):
    # Observed with PyAV 18: write_video puts the index first (faststart), so
    # a file cut at 60% still opens; the demuxer reaches EOF without any
    # error and the frames whose data is present decode normally (14 of the
    # 50 here). read_clip returns them and warns, naming the path.
    path, _ = clip5s
    full = read_clip(path, fps=100.0, max_frames=1000)
    cut = tmp_path / "cut60.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])

    caplog.set_level(logging.WARNING, logger=LOGGER)
    part = read_clip(cut, fps=100.0, max_frames=1000)
    assert 0 < part.num_frames < full.num_frames
    # The prefix is bit-identical to the same frames of the complete file.
    np.testing.assert_array_equal(part.timestamps, full.timestamps[: part.num_frames])
    np.testing.assert_array_equal(part.frames, full.frames[: part.num_frames])
    assert any(str(cut) in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)


def test_truncated_mp4_with_index_at_end_raises(tmp_path):
    # Observed with PyAV 18: a plain mp4 (index written last, FFmpeg's
    # default) cut at 60% has no index at all, so opening it fails with
    # InvalidDataError; read_clip wraps that in VideoReadError.
    path = tmp_path / "plain.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i, rgb in enumerate(make_frames(50)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert read_clip(path, fps=100.0, max_frames=1000).num_frames == 50  # intact file is fine

    cut = tmp_path / "plain_cut60.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoReadError, match="cannot open") as info:
        read_clip(cut)
    assert str(cut) in str(info.value)


def test_truncated_file_never_leaks_other_exceptions(tmp_path, clip5s):
    # Whatever the cut point, the only outcomes are frames or VideoReadError.
    path, _ = clip5s
    data = path.read_bytes()
    for frac in np.linspace(0.02, 0.98, 25):
        cut = tmp_path / f"cut{frac:.2f}.mp4"
        cut.write_bytes(data[: int(len(data) * frac)])
        try:
            clip = read_clip(cut, fps=100.0, max_frames=1000)
        except VideoReadError as exc:
            assert str(cut) in str(exc)
        else:
            assert 0 < clip.num_frames <= 50
            assert np.all(np.diff(clip.timestamps) > 0)


def test_demux_error_mid_file_returns_frames_decoded_so_far(clip5s, monkeypatch, caplog):
    # Real I/O errors mid-file are hard to provoke with a local file, so the
    # container is wrapped to raise from demux() after 10 packets, as a read
    # error on a network mount would. The decoder still holds frames from
    # those packets (x264 reorders for B-frames); read_clip must flush them
    # out, so the result is exactly the first frames of the intact file.
    path, _ = clip5s
    full = read_clip(path, fps=100.0, max_frames=1000)

    class FailingDemux:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, name):
            return getattr(self._real, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._real.__exit__(*exc)

        def demux(self, *streams):
            for k, packet in enumerate(self._real.demux(*streams)):
                if k == 10:
                    raise OSError("simulated read error")
                yield packet

    real_open = av.open
    monkeypatch.setattr(video.av, "open", lambda *a, **kw: FailingDemux(real_open(*a, **kw)))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    part = read_clip(path, fps=100.0, max_frames=1000)

    # 10 packets in, x264's two-frame reorder delay leaves 8 frames returned
    # while decoding and 2 more that only the flush brings out.
    assert part.num_frames == 10
    np.testing.assert_array_equal(part.timestamps, full.timestamps[:10])
    np.testing.assert_array_equal(part.frames, full.frames[:10])
    assert any("ended early" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_corrupted_middle_bytes_never_leak_other_exceptions(tmp_path, clip5s):
    path, _ = clip5s
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for k in range(10):
        bad = bytearray(data)
        start = int(rng.integers(len(data) // 3, len(data) - 64))
        bad[start : start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        p = tmp_path / f"corrupt{k}.mp4"
        p.write_bytes(bytes(bad))
        try:
            clip = read_clip(p, fps=100.0, max_frames=1000)
        except VideoReadError as exc:
            assert str(p) in str(exc)
        else:
            assert clip.num_frames > 0
            assert np.all(np.diff(clip.timestamps) > 0)


# --------------------------------------------------------------------- writing


def test_write_video_is_deterministic_and_leaves_no_temp_files(tmp_path):
    # Reads between the writes on purpose: letting PyAV's encoder convert
    # RGB itself made the bytes differ intermittently after decoding in the
    # same process, so repeat a few times to catch that kind of flakiness.
    frames = make_frames(30)
    first = tmp_path / "a.mp4"
    write_video(first, frames, 10)
    expected = first.read_bytes()
    for k in range(5):
        read_clip(first, fps=100.0, max_frames=1000)
        again = tmp_path / f"again{k}.mp4"
        write_video(again, frames, 10)
        assert again.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"] + [f"again{k}.mp4" for k in range(5)]


def test_write_video_creates_parents_and_replaces_existing(tmp_path):
    path = tmp_path / "x" / "y" / "v.mp4"
    write_video(path, make_frames(10), 10)
    first = path.read_bytes()
    write_video(path, make_frames(20), 10)
    assert path.read_bytes() != first
    assert read_clip(path, fps=100.0, max_frames=100).num_frames == 20
    assert os.listdir(path.parent) == ["v.mp4"]


def test_write_video_failure_removes_temp_and_keeps_no_output(tmp_path, monkeypatch):
    class ExplodingFrame:
        @staticmethod
        def from_ndarray(*args, **kwargs):
            raise RuntimeError("boom")

    monkeypatch.setattr(video.av, "VideoFrame", ExplodingFrame)
    with pytest.raises(RuntimeError, match="boom"):
        write_video(tmp_path / "v.mp4", make_frames(5), 10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((2, 31, 48, 3), np.uint8),  # odd height
        np.zeros((2, 32, 47, 3), np.uint8),  # odd width
        np.zeros((2, 32, 48, 3), np.float32),  # not uint8
        np.zeros((2, 32, 48), np.uint8),  # no channel axis
        np.zeros((0, 32, 48, 3), np.uint8),  # no frames
    ],
    ids=["odd-h", "odd-w", "float", "gray", "empty"],
)
def test_write_video_rejects_bad_frames(tmp_path, frames):
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.mp4", frames, 10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [0, -5, 2.5])
def test_write_video_rejects_bad_fps(tmp_path, fps):
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.mp4", make_frames(2), fps)
