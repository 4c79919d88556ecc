"""scripts/bench_backbone.py on its CPU smoke shape: the script a lent GPU machine runs must not
first fail there. Checks the figures it reports, including grouped vs per-pair scoring of one
video shared by several queries (same scores, fewer vision passes)."""

from __future__ import annotations

import json
import subprocess
import sys

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
