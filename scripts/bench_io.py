"""Issue 16's throughput figures side by side in one run: reading frames, evaluating, reranking.

Sections (--sections, default read,eval,rerank; rerank only where a `dvc repro` left a model):

- read: generates (in a temporary folder, deleted afterwards) an H.264 mp4 of --minutes minutes at
  1280x720, 30 fps, with a keyframe every 250 frames (x264 ultrafast, a scrolling blocky pattern:
  cheap to encode, real motion to decode), then times read_clip seeking to the kept frames on one
  thread and on each of --threads, read_clip(seek=False) (decodes every frame, converts the sampled
  ones to RGB) and decoding every frame with PyAV converting none (the floor of any sequential
  reader); prints whether the seek and sequential reads gave the same timestamps and pixels and
  whether the default read fell back to sequential decoding. Median of --repeat runs [minimum].
- eval: the evaluate CLI against plain ir-measures at MultiVENT 2.0 test scale (scripts/bench_eval.py).
- rerank: pairs/s with 0 and 2 DataLoader workers (scripts/bench_rerank_workers.py).

Ends with the issue's bars (read_clip at least 5x faster than decoding every frame; the evaluate
CLI within 1.3x of ir-measures), each with the figure measured above.

    python scripts/bench_io.py                          # everything at the issue's sizes
    python scripts/bench_io.py --sections read --minutes 2 --repeat 1   # quick look at reading
    python scripts/bench_io.py --video my.mp4 --sections read           # time an existing file instead
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def bench(path: Path, fps: float, max_frames: int, repeat: int, threads: list[int]) -> float:
    """Time the readers of ``path``; prints the table and returns decode-every-frame over the
    fastest read_clip."""
    counter = FallbackCounter()
    logging.getLogger("rankvideo.data.video").addHandler(counter)
    kw = {"fps": fps, "max_frames": max_frames, "timeout_s": 3600.0}
    rows = [(f"read_clip, seeks, {n} thread{'s' if n > 1 else ''}",
             timed(lambda n=n: read_clip(path, threads=n, **kw), repeat)) for n in sorted({1, *threads})]
    rows += [
        ("read_clip, seek=False (sequential)", timed(lambda: read_clip(path, seek=False, **kw), repeat)),
        ("decode every frame, no RGB conversion", timed(lambda: decode_every_frame(path), repeat)),
    ]
    sequential = rows[-2][1][2]
    every = rows[-1][1][0]
    print(f"read_clip(fps={fps:g}, max_frames={max_frames}); median of {repeat} runs [min]:")
    print(f"  {'method':<40} {'median [min] s':>16} {'every frame / it':>17}")
    for name, (median, best, _) in rows:
        print(f"  {name:<40} {median:>7.2f} [{best:6.2f}] {every / median:>16.2f}x")
    same = all(
        np.array_equal(clip.timestamps, sequential.timestamps) and np.array_equal(clip.frames, sequential.frames)
        for _, (_, _, clip) in rows[:-2]
    )
    print(f"every seek read gave the sequential read's timestamps and pixels: {same} ({sequential.num_frames} frames)")
    fell_back = "yes: " + counter.messages[0] if counter.messages else "no"
    print(f"a read fell back to sequential decoding: {fell_back}")
    return every / min(median for _, (median, _, _) in rows[:-2])


def read_section(args) -> float:
    if args.video:
        print(describe(args.video))
        return bench(args.video, args.fps, args.max_frames, args.repeat, args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmp:
        path = Path(tmp) / f"bench_{args.minutes:g}min_720p30_gop{GOP}.mp4"
        start = time.perf_counter()
        write_bench_video(path, args.minutes)
        print(f"{describe(path)}, keyframe every {GOP} frames (encoded in {time.perf_counter() - start:.1f} s)")
        return bench(path, args.fps, args.max_frames, args.repeat, args.threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="read,eval,rerank", help="any of read, eval, rerank (default all three)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the generated clip (default 10)")
    ap.add_argument("--fps", type=float, default=2.0, help="read_clip's fps (default 2)")
    ap.add_argument("--max-frames", type=int, default=32, help="read_clip's max_frames (default 32)")
    ap.add_argument("--threads", default="2", help="read_clip thread counts timed beside 1 (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each reader (default 3)")
    ap.add_argument("--video", type=Path, help="time this file instead of generating one")
    ap.add_argument("--queries", type=int, default=2545, help="eval: queries (default 2545)")
    ap.add_argument("--depth", type=int, default=1000, help="eval: documents per query (default 1000)")
    ap.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "artifacts" / "model"),
                    help="rerank: model folder (default artifacts/model, from dvc repro)")
    args = ap.parse_args()
    args.threads = [int(n) for n in args.threads.split(",") if n]
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = set(sections) - {"read", "eval", "rerank"}
    if unknown:
        sys.exit(f"--sections: unknown {', '.join(sorted(unknown))} (choose from read, eval, rerank)")

    bars = []
    if "read" in sections:
        print("== read ==")
        ratio = read_section(args)
        bars.append(("read_clip >= 5x faster than decoding every frame", f"{ratio:.2f}x", ratio >= 5.0))
    if "eval" in sections:
        import bench_eval

        print("\n== eval ==")
        with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
            best = bench_eval.compare(args.queries, args.depth, 1, Path(tmp))
        plain = best["plain ir-measures"][0]
        for name in ("evaluate CLI (MLflow on)", "evaluate CLI (tracking.enabled=false)"):
            ratio = best[name][0] / plain
            bars.append((f"{name} <= 1.3x ir-measures", f"{ratio:.2f}x", ratio <= 1.3))
    if "rerank" in sections:
        print("\n== rerank ==")
        if not Path(args.model).is_dir():
            print(f"skipped: {args.model} is not there (run `dvc repro build_model` first, or pass --model)")
        else:
            import bench_rerank_workers

            rows = bench_rerank_workers.compare(argparse.Namespace(workers=2, split="test", depth=20, model=args.model))
            bars.append(("rerank 2 workers vs 0 (no bar)", f"{rows[0][1] / rows[1][1]:.2f}x", None))
    print("\n== bars ==")
    for name, figure, met in bars:
        verdict = "-" if met is None else ("met" if met else "NOT met")
        print(f"  {name:<58} {figure:>8}  {verdict}")


if __name__ == "__main__":
    main()
