"""read_clip's seek path against its sequential path, on generated clips.

read_clip(seek=None) lists frame timestamps by demuxing, then seeks to and
decodes only the frames kept; seek=True does the same but raises instead of
falling back; seek=False decodes every frame. On ordinary files all three must
return the same timestamps and the same pixels; where seeking cannot be
trusted, the default must fall back to the sequential result and say so once.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from rankvideo.data import video
from rankvideo.data.video import VideoReadError, read_clip, write_video

SIZE = 64  # small frames keep encoding hundreds of them quick
LOGGER = "rankvideo.data.video"
FALLBACK = "cannot read it by seeking"


def textured_frames(n: int) -> np.ndarray:
    """n distinct frames: a fixed random texture scrolling one pixel per
    frame, so every frame differs and predicted frames carry real motion."""
    texture = np.random.default_rng(0).integers(0, 256, (SIZE, 2 * SIZE, 3), dtype=np.uint8)
    return np.stack([np.roll(texture, i, axis=1)[:, :SIZE] for i in range(n)])


def write_gop_video(path, n: int, fps: int, gop: int, *, fmt: str = "mp4", start_pts: int = 0) -> None:
    """Encode n textured frames with a keyframe every ``gop`` frames (x264,
    B-frames on); frame i gets pts start_pts + i in a 1/fps time base."""
    options = {"movflags": "+faststart"} if fmt == "mp4" else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        # scenecut=0: keyframes exactly every gop frames, none added by x264;
        # one thread and asm=0 give the same bytes on every run (see write_video).
        stream.options = {"g": str(gop), "threads": "1", "x264-params": "scenecut=0:asm=0"}
        for i, rgb in enumerate(textured_frames(n)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = start_pts + i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def assert_seek_matches_sequential(path, fps: float, max_frames: int):
    """Read ``path`` both ways; they must agree exactly. Returns the clip."""
    seeked = read_clip(path, fps=fps, max_frames=max_frames, seek=True)
    sequential = read_clip(path, fps=fps, max_frames=max_frames, seek=False)
    np.testing.assert_array_equal(seeked.timestamps, sequential.timestamps)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)
    assert seeked.native_fps == sequential.native_fps
    assert seeked.path == sequential.path
    return seeked


class SeekCounter:
    """Wraps a container to count its seeks; optionally shifts every seek
    ``shift`` time-base units later, to simulate a seek landing too late."""

    def __init__(self, real, log: list, shift: int = 0):
        self._real, self._log, self._shift = real, log, shift

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._real.__exit__(*exc)

    def seek(self, offset, **kwargs):
        self._log.append(offset)
        return self._real.seek(offset + self._shift, **kwargs)


@pytest.fixture
def count_seeks(monkeypatch):
    """Patch av.open so every container counts its seeks; returns the list
    of seek offsets, and a setter for a shift applied to them."""
    seeks: list[int] = []
    shift = {"value": 0}
    real_open = av.open
    monkeypatch.setattr(video.av, "open", lambda *a, **kw: SeekCounter(real_open(*a, **kw), seeks, shift["value"]))

    def set_shift(value: int) -> None:
        shift["value"] = value

    return seeks, set_shift


@pytest.fixture
def short_clip(tmp_path):
    """5 s at 10 fps, written by write_video (x264 defaults: one GOP)."""
    path = tmp_path / "short.mp4"
    write_video(path, textured_frames(50), 10)
    return path


@pytest.fixture
def dense_gop_clip(tmp_path):
    """20 s at 30 fps (600 frames), a keyframe every 15 frames."""
    path = tmp_path / "dense.mp4"
    write_gop_video(path, 600, 30, gop=15)
    return path


@pytest.fixture
def sparse_gop_clip(tmp_path):
    """20 s at 30 fps (600 frames), a keyframe every 250 frames."""
    path = tmp_path / "sparse.mp4"
    write_gop_video(path, 600, 30, gop=250)
    return path


# ------------------------------------------------------------ same result


@pytest.mark.parametrize(("fps", "max_frames"), [(2.0, 32), (3.0, 100), (10.0, 4), (25.0, 1000), (0.7, 3), (1.0, 1)])
def test_short_clip_seek_equals_sequential(short_clip, fps, max_frames, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clip = assert_seek_matches_sequential(short_clip, fps, max_frames)
    assert read_clip(short_clip, fps=fps, max_frames=max_frames).num_frames == clip.num_frames
    assert not caplog.records


def test_thinned_selection_seek_equals_sequential(dense_gop_clip, caplog):
    # fps=10 over 20 s takes 200 frames, far more than the buffer cap of
    # 2 * 8: the sequential path thins its buffer several times, and the
    # seek path must plan exactly the same frames.
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    clip = assert_seek_matches_sequential(dense_gop_clip, fps=10.0, max_frames=8)
    assert clip.num_frames == 8
    assert any("thinned sample buffer" in r.getMessage() for r in caplog.records)
    assert not any(FALLBACK in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("fps", "max_frames"), [(2.0, 32), (1.0, 4), (30.0, 1000)])
def test_sparse_keyframes_seek_equals_sequential(sparse_gop_clip, fps, max_frames):
    assert_seek_matches_sequential(sparse_gop_clip, fps, max_frames)


@pytest.mark.parametrize("fmt", ["mp4", "matroska"])
def test_stream_starting_after_zero_seek_equals_sequential(tmp_path, fmt):
    path = tmp_path / f"late.{'mp4' if fmt == 'mp4' else 'mkv'}"
    write_gop_video(path, 120, 10, gop=20, fmt=fmt, start_pts=25)
    clip = assert_seek_matches_sequential(path, fps=2.0, max_frames=8)
    assert clip.timestamps[0] == pytest.approx(2.5)


# ------------------------------------------------------- how it seeks


def test_one_seek_per_gop_when_targets_share_it(sparse_gop_clip, count_seeks):
    # 600 frames in GOPs of 250: 3 GOPs; the 40 targets are reached by
    # decoding forward inside each GOP, never by seeking back into it.
    seeks, _ = count_seeks
    clip = read_clip(sparse_gop_clip, fps=2.0, max_frames=40, seek=True)
    assert clip.num_frames == 40
    assert 1 <= len(seeks) <= 3


def test_seeks_skip_gops_without_targets(dense_gop_clip, count_seeks):
    # One target every 2 s (60 frames) with a keyframe every 15: each target
    # is reached by seeking to its own GOP, not by decoding the GOPs between.
    seeks, _ = count_seeks
    clip = read_clip(dense_gop_clip, fps=0.5, max_frames=32, seek=True)
    assert len(seeks) == clip.num_frames == 10


# ------------------------------------------------------------- fallback


def test_truncated_file_falls_back_to_sequential_result(tmp_path, dense_gop_clip, caplog):
    cut = tmp_path / "cut.mp4"
    data = dense_gop_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # faststart: the index survives, half the frames do not

    caplog.set_level(logging.WARNING, logger=LOGGER)
    auto = read_clip(cut, fps=2.0, max_frames=32)
    sequential = read_clip(cut, fps=2.0, max_frames=32, seek=False)
    np.testing.assert_array_equal(auto.timestamps, sequential.timestamps)
    np.testing.assert_array_equal(auto.frames, sequential.frames)
    assert 0 < auto.num_frames < 40
    fallbacks = [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(fallbacks) == 1 and str(cut) in fallbacks[0] and "truncated" in fallbacks[0]

    with pytest.raises(VideoReadError, match="by seeking") as info:
        read_clip(cut, seek=True)
    assert str(cut) in str(info.value)


def test_fallback_is_logged_once_per_file(tmp_path, dense_gop_clip, caplog):
    cut = tmp_path / "cut_twice.mp4"
    data = dense_gop_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    caplog.set_level(logging.WARNING, logger=LOGGER)
    read_clip(cut)
    read_clip(cut)
    assert len([r for r in caplog.records if FALLBACK in r.getMessage()]) == 1


def test_stream_without_timestamps_falls_back(tmp_path, caplog):
    # A raw H.264 elementary stream has no container timestamps, duration
    # or index: only sequential decoding can read it.
    path = tmp_path / "raw.h264"
    write_gop_video(path, 40, 10, gop=10, fmt="h264")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    auto = read_clip(path, fps=2.0, max_frames=32)
    sequential = read_clip(path, fps=2.0, max_frames=32, seek=False)
    np.testing.assert_array_equal(auto.timestamps, sequential.timestamps)
    np.testing.assert_array_equal(auto.frames, sequential.frames)
    assert any(FALLBACK in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_seek_landing_after_its_target_falls_back(dense_gop_clip, count_seeks, caplog):
    # Every seek is shifted 1 s (30 frames, two GOPs) later than asked, as an
    # index that lies would do; the frames decoded then are not the ones
    # planned, so read_clip must notice and decode sequentially.
    _, set_shift = count_seeks
    expected = read_clip(dense_gop_clip, fps=0.5, max_frames=32, seek=False)
    set_shift(int(1 / av.open(str(dense_gop_clip)).streams.video[0].time_base))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    got = read_clip(dense_gop_clip, fps=0.5, max_frames=32)
    np.testing.assert_array_equal(got.timestamps, expected.timestamps)
    np.testing.assert_array_equal(got.frames, expected.frames)
    assert any(FALLBACK in r.getMessage() and "landed" in r.getMessage() for r in caplog.records)


def test_dropped_frame_after_seek_falls_back(short_clip, monkeypatch, caplog):
    # The decoder skipping a frame (as on a corrupt packet) makes the decoded
    # sequence disagree with the demuxed one: fall back rather than guess.
    real_decode = av.container.InputContainer.decode

    class SkippingContainer:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, name):
            return getattr(self._real, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._real.__exit__(*exc)

        def decode(self, *args, **kwargs):
            for k, frame in enumerate(real_decode(self._real, *args, **kwargs)):
                if k != 3:
                    yield frame

    real_open = av.open
    monkeypatch.setattr(video.av, "open", lambda *a, **kw: SkippingContainer(real_open(*a, **kw)))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    got = read_clip(short_clip, fps=25.0, max_frames=1000)
    assert got.num_frames == 50  # the sequential path does not use decode()
    assert any(FALLBACK in r.getMessage() and "expected" in r.getMessage() for r in caplog.records)


def test_corrupted_bytes_give_the_sequential_result(tmp_path, dense_gop_clip):
    # Damaged packets decode with error concealment, which draws on frames
    # decoded earlier and so differs after a seek: frames flagged corrupt
    # must make read_clip fall back (some of these 30 damage a kept frame).
    data = dense_gop_clip.read_bytes()
    rng = np.random.default_rng(0)
    for k in range(30):
        bad = bytearray(data)
        start = int(rng.integers(len(data) // 3, len(data) - 64))
        bad[start : start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        path = tmp_path / f"corrupt{k}.mp4"
        path.write_bytes(bytes(bad))
        auto = read_clip(path, fps=2.0, max_frames=16)
        sequential = read_clip(path, fps=2.0, max_frames=16, seek=False)
        np.testing.assert_array_equal(auto.timestamps, sequential.timestamps)
        np.testing.assert_array_equal(auto.frames, sequential.frames, err_msg=f"corruption {k} at byte {start}")


@pytest.mark.parametrize(
    ("ranks", "depth"),
    [([0, 1, 2, 3], 0), ([0, 2, 1, 3], 1), ([0, 1, 4, 2, 3], 1), ([0, 4, 2, 1, 3], 2), ([3, 0, 1, 2], 1)],
)
def test_reorder_depth_of_decode_orders(ranks, depth):
    # ranks[d] = presentation position of the d-th packet decoded; x264's
    # B-pyramid (I0 P4 B2 B1 B3) needs two frames held back.
    assert video._reorder_depth(ranks) == depth


def test_reordering_deeper_than_the_headers_declare_falls_back(short_clip, monkeypatch, caplog):
    # A decoder that must discover the reordering depth drops frames while
    # it does; the seek path cannot reproduce where, so it must not run.
    monkeypatch.setattr(video, "_reorder_depth", lambda ranks: 99)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    got = read_clip(short_clip, fps=10.0, max_frames=8)
    expected = read_clip(short_clip, fps=10.0, max_frames=8, seek=False)
    np.testing.assert_array_equal(got.timestamps, expected.timestamps)
    assert any(FALLBACK in r.getMessage() and "reordering depth" in r.getMessage() for r in caplog.records)


def test_frame_limit_applies_to_the_seek_path(short_clip):
    with pytest.raises(VideoReadError, match="max_decode_frames=5") as info:
        read_clip(short_clip, max_decode_frames=5, seek=True)
    assert str(short_clip) in str(info.value)


def test_invalid_seek_argument_raises(short_clip):
    with pytest.raises(ValueError, match="seek"):
        read_clip(short_clip, seek="yes")


# ------------------------------------------------------------- threads


@pytest.mark.parametrize("threads", [2, 3, 64])
@pytest.mark.parametrize(("fps", "max_frames"), [(0.5, 32), (2.0, 32), (25.0, 1000)])
def test_threaded_seek_equals_sequential(dense_gop_clip, threads, fps, max_frames, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    threaded = read_clip(dense_gop_clip, fps=fps, max_frames=max_frames, seek=True, threads=threads)
    sequential = read_clip(dense_gop_clip, fps=fps, max_frames=max_frames, seek=False)
    np.testing.assert_array_equal(threaded.timestamps, sequential.timestamps)
    np.testing.assert_array_equal(threaded.frames, sequential.frames)
    assert not [r for r in caplog.records if FALLBACK in r.getMessage()]


def test_threads_open_the_file_once_per_chunk(dense_gop_clip, count_seeks):
    # fps 0.5: 10 targets, each in its own GOP, so 10 seek runs; with 3
    # threads each run is still one seek, spread over 3 openings of the file.
    seeks, _ = count_seeks
    clip = read_clip(dense_gop_clip, fps=0.5, max_frames=32, seek=True, threads=3)
    assert len(seeks) == clip.num_frames == 10


def test_seek_runs_and_their_split_by_decoding_work():
    # 40 frames, keyframes at 0, 10, 20, 30. A seek is made when it skips
    # more than 8 frames: 21 (keyframe 20, 15 after 5) and 35 (keyframe 30,
    # 9 after 21) start runs; 31 after 22 (keyframe 30, 8 after) would not.
    starts = [10 * (p // 10) for p in range(40)]
    index = video._FrameIndex(pts=list(range(40)), start=starts, position={p: p for p in range(40)}, reorder=0)
    assert video._seek_runs(index, [1, 22, 31]) == [[1], [22, 31]]
    runs = video._seek_runs(index, [1, 5, 21, 35, 38])
    assert runs == [[1, 5], [21], [35, 38]]
    # work per run: 6, 2, 9 frames decoded (keyframe to last target), 17 in all
    assert video._split_runs(index, runs, 1) == [runs]
    assert video._split_runs(index, runs, 2) == [[[1, 5], [21]], [[35, 38]]]
    assert video._split_runs(index, runs, 3) == [[[1, 5]], [[21]], [[35, 38]]]
    assert video._split_runs(index, [[35, 38]], 4) == [[[35, 38]]]


def test_truncated_file_read_by_threads_falls_back_to_sequential(tmp_path, dense_gop_clip, caplog):
    cut = tmp_path / "cut_threads.mp4"
    data = dense_gop_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    caplog.set_level(logging.WARNING, logger=LOGGER)
    auto = read_clip(cut, fps=2.0, max_frames=32, threads=2)
    sequential = read_clip(cut, fps=2.0, max_frames=32, seek=False)
    np.testing.assert_array_equal(auto.timestamps, sequential.timestamps)
    np.testing.assert_array_equal(auto.frames, sequential.frames)
    assert any(FALLBACK in r.getMessage() and str(cut) in r.getMessage() for r in caplog.records)


def test_a_lying_index_read_by_threads_falls_back(dense_gop_clip, count_seeks, caplog):
    _, set_shift = count_seeks
    expected = read_clip(dense_gop_clip, fps=0.5, max_frames=32, seek=False)
    set_shift(int(1 / av.open(str(dense_gop_clip)).streams.video[0].time_base))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    got = read_clip(dense_gop_clip, fps=0.5, max_frames=32, threads=2)
    np.testing.assert_array_equal(got.timestamps, expected.timestamps)
    np.testing.assert_array_equal(got.frames, expected.frames)
    assert any(FALLBACK in r.getMessage() and "landed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_invalid_threads_raise(short_clip, threads):
    with pytest.raises(ValueError, match="threads"):
        read_clip(short_clip, threads=threads)


@pytest.mark.parametrize("time_base", [Fraction(1, 15360), Fraction(1001, 30000), Fraction(1, 90000), Fraction(7, 3)])
def test_timestamps_in_seconds_are_the_exact_fractions_rounded(time_base):
    rng = np.random.default_rng(0)
    pts = [int(x) for x in rng.integers(-10**6, 10**10, 5000)] + list(range(300))
    assert video._seconds(pts, time_base) == [float(x * time_base) for x in pts]
    huge = [2**60 + 1, 2**61 + 3]  # beyond float64's exact integers: computed exactly instead
    assert video._seconds(huge, time_base) == [float(x * time_base) for x in huge]
