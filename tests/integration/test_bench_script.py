"""scripts/bench_backbone.py on its CPU smoke shape: the script a lent GPU machine runs must not
first fail there. Checks the figures it reports, including grouped vs per-pair scoring of one
video shared by several queries (same scores, fewer vision passes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


def test_bench_backbone_smoke_reports_grouped_and_per_pair(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_backbone.py"), "--shape", "smoke",
                           "--side", "64", "--train-frames", "4", "--infer-frames", "4", "--steps", "1",
                           "--queries-per-video", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["train"]["pairs_per_step"] == 3
    assert all(abs(x) < 1e3 for x in res["train"]["losses"])
    shared = res["shared_video"]
    assert shared["queries"] == 3
    assert len(shared["grouped"]["scores"]) == 3
    # the two paths score the same pairs: equal up to float rounding
    assert shared["max_abs_score_diff"] < 1e-4
    assert shared["grouped"]["pairs_per_s"] > 0 and shared["per_pair"]["pairs_per_s"] > 0
    assert abs(shared["speedup"] - shared["grouped"]["pairs_per_s"] / shared["per_pair"]["pairs_per_s"]) < 1e-9


@pytest.mark.slow  # about 23 s: encodes a 720p clip and runs the evaluate CLI four times
def test_bench_io_prints_readers_side_by_side_and_the_bars(tmp_path):
    # 3 s of generated 720p video and a 40 x 50 evaluation: the figures are meaningless at this
    # size, but every reader must give the sequential read's frames and both bars must be printed.
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_io.py"), "--sections", "read,eval,rerank",
                           "--minutes", "0.05", "--repeat", "1", "--threads", "2", "--queries", "40", "--depth", "50",
                           "--model", str(tmp_path / "no_model")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for row in ("read_clip, seeks, 1 thread", "read_clip, seeks, 2 threads", "read_clip, seek=False (sequential)",
                "decode every frame, no RGB conversion", "evaluate CLI (MLflow on)", "plain ir-measures"):
        assert row in out, out
    assert "every seek read gave the sequential read's timestamps and pixels: True (6 frames)" in out
    assert "a read fell back to sequential decoding: no" in out
    assert "skipped:" in out and "no_model" in out
    bars = out.split("== bars ==")[1]
    assert "read_clip >= 5x faster than decoding every frame" in bars
    assert "evaluate CLI (MLflow on) <= 1.3x ir-measures" in bars


def test_bench_shared_prefix_times_both_paths_on_the_same_pairs(tiny_cfg, tmp_path):
    from rankvideo.models.tiny import build_tiny_qwen3_vl
    from rankvideo.stages import synthesize

    synthesize.run(tiny_cfg)
    model = build_tiny_qwen3_vl(tmp_path / "model", corpus=["a red square", "flood in Lisbon"], seed=0)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_shared_prefix.py"), "--model", str(model),
                           "--benchmark", str(tiny_cfg.paths.benchmark), "--videos", "2", "--queries", "3",
                           "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "2 videos x 3 queries, batch 32, 1 threads" in out
    whole = float(out.split("every pair whole")[1].split()[0])
    shared, ratio = out.split("shared prefix")[1].split()[:3:2]
    ratio = float(ratio.strip("(x)"))  # printed figures are rounded: equal to within their rounding
    assert whole > 0 and float(shared) > 0 and abs(ratio - float(shared) / whole) <= 0.02 * ratio + 0.01
    assert float(out.split("largest score difference")[1]) < 1e-4

    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_shared_prefix.py"), "--benchmark",
                              str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "no benchmark there; run `dvc repro synthesize` first" in missing.stderr
