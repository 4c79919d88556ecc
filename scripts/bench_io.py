"""Speed of read_clip on a long video: seeking to the kept frames vs decoding every frame.

Generates (in a temporary folder, deleted afterwards) an H.264 mp4 of --minutes minutes at
1280x720, 30 fps, with a keyframe every 250 frames (x264 ultrafast, a scrolling blocky pattern:
cheap to encode, real motion to decode), then times in one run:

- read_clip with the default seek=None (lists timestamps by demuxing, seeks to the kept frames);
- read_clip with seek=False (decodes every frame, converts the sampled ones to RGB);
- decoding every frame with PyAV and converting none (the floor of any sequential reader);

and prints them in a table with the ratio decode-every-frame / read_clip, plus whether the seek
and sequential reads gave the same timestamps and pixels, and whether the default read fell back
to sequential decoding. Times are the median of --repeat runs (the minimum in brackets).

    python scripts/bench_io.py                  # the 10-minute clip of issue 16
    python scripts/bench_io.py --minutes 2      # quicker check (encoding 10 minutes takes a while)
    python scripts/bench_io.py --video my.mp4   # time an existing file instead
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rankvideo.data.video import read_clip  # noqa: E402

WIDTH, HEIGHT, RATE, GOP = 1280, 720, 30, 250
SCROLL_PX = 4  # pattern moves this many pixels per frame


def make_planes(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V planes twice the frame width: 16x16 random blocks over a gradient,
    so a frame is a window sliding along them."""
    blocks = rng.integers(0, 160, (HEIGHT // 16, 2 * WIDTH // 16), dtype=np.uint8)
    y = np.kron(blocks, np.ones((16, 16), np.uint8)) + np.linspace(0, 90, 2 * WIDTH, dtype=np.uint8)
    u = np.kron(blocks[:, ::-1] // 2 + 64, np.ones((8, 8), np.uint8))
    v = np.full((HEIGHT // 2, WIDTH), 128, np.uint8)
    v = np.concatenate([v, v], axis=1)
    return y, u, v


def write_bench_video(path: Path, minutes: float) -> int:
    """Encode the benchmark clip to ``path``; returns its frame count."""
    n = int(round(minutes * 60 * RATE))
    y, u, v = make_planes(np.random.default_rng(0))
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        # scenecut=0: a keyframe exactly every GOP frames, none added by x264.
        stream.options = {"preset": "ultrafast", "g": str(GOP), "x264-params": "scenecut=0"}
        for i in range(n):
            x = (i * SCROLL_PX) % WIDTH
            yuv = np.concatenate(
                [y[:, x : x + WIDTH], u[:, x // 2 : x // 2 + WIDTH // 2].reshape(HEIGHT // 4, WIDTH),
                 v[:, x // 2 : x // 2 + WIDTH // 2].reshape(HEIGHT // 4, WIDTH)]
            )
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return n


def decode_every_frame(path: Path) -> int:
    """Decode every frame of the first video stream, converting none; returns the count."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def timed(fn, repeat: int):
    """Run ``fn`` ``repeat`` times; returns (median s, min s, last result)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


class FallbackCounter(logging.Handler):
    """Counts read_clip's warnings that it decoded a file sequentially instead of seeking."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "cannot read it by seeking" in record.getMessage():
            self.messages.append(record.getMessage())


def describe(path: Path) -> str:
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        seconds = float(s.duration * s.time_base) if s.duration else container.duration / av.time_base
        return (f"{path.name}: {seconds / 60:.1f} min, {s.width}x{s.height}, {float(s.average_rate):g} fps, "
                f"{s.frames} frames, {path.stat().st_size / 1e6:.1f} MB")


def bench(path: Path, fps: float, max_frames: int, repeat: int) -> None:
    counter = FallbackCounter()
    logging.getLogger("rankvideo.data.video").addHandler(counter)
    kw = {"fps": fps, "max_frames": max_frames, "timeout_s": 3600.0}
    rows = [
        ("read_clip, seek=None (auto: seeks)", timed(lambda: read_clip(path, **kw), repeat)),
        ("read_clip, seek=False (sequential)", timed(lambda: read_clip(path, seek=False, **kw), repeat)),
        ("decode every frame, no RGB conversion", timed(lambda: decode_every_frame(path), repeat)),
    ]
    auto, sequential = rows[0][1][2], rows[1][1][2]
    print(f"read_clip(fps={fps:g}, max_frames={max_frames}); median of {repeat} runs [min]:")
    print(f"  {'method':<40} {'median [min] s':>16}")
    for name, (median, best, _) in rows:
        print(f"  {name:<40} {median:>7.2f} [{best:6.2f}]")
    print(f"  {'ratio decode-every-frame / read_clip':<40} {rows[2][1][0] / rows[0][1][0]:>7.2f}x")
    print(f"  {'ratio read_clip sequential / read_clip':<40} {rows[1][1][0] / rows[0][1][0]:>7.2f}x")
    same_ts = np.array_equal(auto.timestamps, sequential.timestamps)
    same_px = np.array_equal(auto.frames, sequential.frames)
    print(f"seek and sequential timestamps equal: {same_ts} ({auto.num_frames} frames); pixels equal: {same_px}")
    fell_back = "yes: " + counter.messages[0] if counter.messages else "no"
    print(f"default read fell back to sequential decoding: {fell_back}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the generated clip (default 10)")
    ap.add_argument("--fps", type=float, default=2.0, help="read_clip's fps (default 2)")
    ap.add_argument("--max-frames", type=int, default=32, help="read_clip's max_frames (default 32)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each method (default 3)")
    ap.add_argument("--video", type=Path, help="time this file instead of generating one")
    args = ap.parse_args()

    if args.video:
        print(describe(args.video))
        bench(args.video, args.fps, args.max_frames, args.repeat)
        return
    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmp:
        path = Path(tmp) / f"bench_{args.minutes:g}min_720p30_gop{GOP}.mp4"
        start = time.perf_counter()
        write_bench_video(path, args.minutes)
        print(f"{describe(path)}, keyframe every {GOP} frames (encoded in {time.perf_counter() - start:.1f} s)")
        bench(path, args.fps, args.max_frames, args.repeat)


if __name__ == "__main__":
    main()
