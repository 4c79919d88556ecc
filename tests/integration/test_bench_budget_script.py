"""scripts/bench_budget.py runs on its smallest setting and reports the budget's frame size and
token counts for both clips, with and without the official budget."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_bench_budget_smoke():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_budget.py"), "--frames", "2", "--batch", "1",
                           "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("1280x720", "640x360"))]
    assert [(r[0], r[1]) for r in rows] == [("1280x720", "none"), ("1280x720", "official"),
                                           ("640x360", "none"), ("640x360", "official")]
    for clip, budget, sees, grid, tiny, qwen3, *_ in rows:
        if budget == "official":
            # 256 x 480 frames: 16 x 30 patches of 16 px on the tiny backbone, 8 x 15 of 32 px on Qwen3-VL.
            assert (sees, grid, tiny, qwen3) == ("480x256", "1,32,60", "480", "120")
