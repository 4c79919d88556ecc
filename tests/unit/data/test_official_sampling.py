"""read_clip(sampling="official"): the official inference's frame rule (qwen-vl-utils), by hand.

The rule: count = duration * fps, at least 4, at most max_frames (rounded down to even) and the
file's frame count, rounded down to even; positions = that many points spread evenly over 0 ..
frames - 1, rounded (halves to even). Counts and positions below are derived by hand.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rankvideo.data.video import official_frame_positions, read_clip, write_video

SIDE = 32


def frames_of(n: int, side: int = SIDE) -> np.ndarray:
    """n frames whose first pixel row encodes the frame number, to recognise them after decoding."""
    f = np.zeros((n, side, side, 3), np.uint8)
    for i in range(n):
        f[i, :, :, 0] = (i * 37) % 256
        f[i, :, :, 1] = (i * 11) % 256
    return f


@pytest.mark.parametrize("frames, duration, positions", [
    # 1 s at 10 fps: 1 * 2 = 2 frames, raised to 4; 0..9 in 3 equal steps of 3.
    (10, 1.0, [0, 3, 6, 9]),
    # 1 s at 30 fps: 4 frames over 0..29, steps of 9.67: 9.67 -> 10, 19.33 -> 19.
    (30, 1.0, [0, 10, 19, 29]),
    # 2 s at 10 fps: 2 * 2 = 4 frames over 0..19, steps of 6.33: 6.33 -> 6, 12.67 -> 13.
    (20, 2.0, [0, 6, 13, 19]),
    # 10 s at 10 fps: 20 frames over 0..99, steps of 99 / 19 = 5.2105.
    (100, 10.0, [0, 5, 10, 16, 21, 26, 31, 36, 42, 47, 52, 57, 63, 68, 73, 78, 83, 89, 94, 99]),
    # 3 frames (0.3 s): 4 capped at 3 frames, rounded down to even: the first and the last.
    (3, 0.3, [0, 2]),
    # One frame: kept (qwen-vl-utils refuses such a file).
    (1, 0.1, [0]),
])
def test_official_positions_by_hand(frames, duration, positions):
    assert official_frame_positions(frames, duration, fps=2.0, max_frames=32) == positions


def test_ten_minute_clip_keeps_max_frames_spread_over_the_whole_video():
    # 600 s * 2 fps = 1200 frames, capped at 32. 30 fps: 18000 frames, steps of 17999 / 31 = 580.61.
    p = official_frame_positions(18000, 600.0, fps=2.0, max_frames=32)
    assert len(p) == 32 and p[:4] == [0, 581, 1161, 1742] and p[-2:] == [17418, 17999]
    # An odd max_frames is rounded down to even: 31 -> 30 frames, steps of 17999 / 29 = 620.66.
    p = official_frame_positions(18000, 600.0, fps=2.0, max_frames=31)
    assert len(p) == 30 and p[:3] == [0, 621, 1241] and p[-1] == 17999
    # 1 fps for 10 minutes: 600 frames, steps of 599 / 31 = 19.32.
    p = official_frame_positions(600, 600.0, fps=2.0, max_frames=32)
    assert p[:5] == [0, 19, 39, 58, 77] and p[-3:] == [560, 580, 599]


def test_official_positions_reject_bad_arguments():
    with pytest.raises(ValueError, match="max_frames must be an integer >= 2"):
        official_frame_positions(10, 1.0, max_frames=1)
    with pytest.raises(ValueError, match="num_frames"):
        official_frame_positions(0, 1.0)
    with pytest.raises(ValueError, match="duration_s"):
        official_frame_positions(10, float("nan"))


@pytest.mark.parametrize("seconds, native, expected", [
    (1, 10, [0, 3, 6, 9]),
    (2, 10, [0, 6, 13, 19]),
    (10, 10, [0, 5, 10, 16, 21, 26, 31, 36, 42, 47, 52, 57, 63, 68, 73, 78, 83, 89, 94, 99]),
])
def test_read_clip_official_takes_those_frames_by_seeking_and_sequentially(tmp_path, seconds, native, expected):
    path = tmp_path / f"{seconds}s.mp4"
    frames = frames_of(seconds * native)
    write_video(path, frames, fps=native)
    seeked = read_clip(path, fps=2.0, max_frames=32, sampling="official", seek=True)
    sequential = read_clip(path, fps=2.0, max_frames=32, sampling="official", seek=False)
    np.testing.assert_allclose(seeked.timestamps, np.array(expected) / native)
    np.testing.assert_array_equal(seeked.timestamps, sequential.timestamps)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)
    # The decoded frames are the expected ones (colour codes survive the lossy encode closely).
    red = seeked.frames[:, SIDE // 2, SIDE // 2, 0].astype(int)
    assert np.abs(red - (np.array(expected) * 37) % 256).max() <= 6


def test_read_clip_official_on_a_ten_minute_video(tmp_path):
    path = tmp_path / "10min.mp4"
    write_video(path, frames_of(600, side=16), fps=1)
    clip = read_clip(path, fps=2.0, max_frames=32, sampling="official")
    assert clip.num_frames == 32
    assert clip.timestamps[:5].tolist() == [0, 19, 39, 58, 77] and clip.timestamps[-3:].tolist() == [560, 580, 599]
    sequential = read_clip(path, fps=2.0, max_frames=32, sampling="official", seek=False)
    np.testing.assert_array_equal(clip.timestamps, sequential.timestamps)


def test_grid_stays_the_default_and_differs_from_official(tmp_path):
    path = tmp_path / "10s.mp4"
    write_video(path, frames_of(100), fps=10)
    default = read_clip(path)
    grid = read_clip(path, sampling="grid")
    np.testing.assert_array_equal(default.frames, grid.frames)
    np.testing.assert_array_equal(default.timestamps, grid.timestamps)
    # The grid: every 0.5 s from 0, so it stops at 9.5 s; the official rule reaches the last frame.
    np.testing.assert_allclose(grid.timestamps, np.arange(20) / 2)
    assert read_clip(path, sampling="official").timestamps[-1] == pytest.approx(9.9)


def test_read_clip_refuses_an_unknown_rule_and_too_few_frames(tmp_path):
    path = tmp_path / "1s.mp4"
    write_video(path, frames_of(10), fps=10)
    with pytest.raises(ValueError, match="sampling must be one of 'grid', 'official', got 'uniform'"):
        read_clip(path, sampling="uniform")
    with pytest.raises(ValueError, match="max_frames must be >= 2"):
        read_clip(path, max_frames=1, sampling="official")


def test_a_truncated_file_falls_back_to_two_sequential_passes_and_warns_once(tmp_path, caplog):
    path = tmp_path / "10s.mp4"
    write_video(path, frames_of(100), fps=10)
    cut = tmp_path / "cut60.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    every = read_clip(cut, fps=100.0, max_frames=1000)  # every frame that decodes, on the grid
    n = every.num_frames
    assert 4 < n < 100

    caplog.clear()
    caplog.set_level(logging.WARNING, logger="rankvideo.data.video")
    clip = read_clip(cut, fps=2.0, max_frames=32, sampling="official")
    # The rule sees the n frames that decode: n / 10 s * 2 fps frames (at least 4, even).
    expected = official_frame_positions(n, n / 10, fps=2.0, max_frames=32)
    np.testing.assert_array_equal(clip.timestamps, every.timestamps[expected])
    np.testing.assert_array_equal(clip.frames, every.frames[expected])
    # Said once, by the pass that takes the frames, not by the one that counts them.
    truncated = [r for r in caplog.records if str(cut) in r.getMessage() and "container announces" in r.getMessage()]
    assert len(truncated) == 1
