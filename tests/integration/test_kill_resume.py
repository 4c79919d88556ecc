"""Nothing lost, nothing silently wrong after a crash: the debug pipeline killed with SIGKILL inside
the teacher, stage 1, stage 2 and the rerank stage (and a rerank progress file cut mid-record),
then `dvc repro` to completion, gives the same runs and metrics as an uninterrupted `dvc repro`.

Slow (two full debug pipelines plus four interrupted ones): `python -m pytest -m slow`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import make_scratch_project, sh

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a DVC repo")]

OUTPUTS = ("artifacts/teacher/labels.jsonl", "artifacts/teacher/run_text.trec", "artifacts/rerank/run.trec",
           "artifacts/rerank_stage1/run.trec", "artifacts/rerank_zeroshot/run.trec", "artifacts/evaluate/metrics.json")


def _repro_killed_in(root: Path, stage: str, after: float) -> None:
    """Start `dvc repro`, and SIGKILL its whole process group `after` seconds into `stage`."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.Popen(["dvc", "repro"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True)
    started = threading.Event()

    def watch():
        for line in p.stdout:
            if line.startswith(f"Running stage '{stage}'"):
                started.set()
        started.set()  # the output ended: do not wait forever

    threading.Thread(target=watch, daemon=True).start()
    assert started.wait(900), f"dvc repro never reached stage {stage}"
    time.sleep(after)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(60)


def test_sigkill_in_every_stage_then_repro_gives_the_uninterrupted_results(tmp_path_factory):
    clean = make_scratch_project(tmp_path_factory.mktemp("clean"))
    sh(clean, "dvc", "repro", timeout=1800)

    crashed = make_scratch_project(tmp_path_factory.mktemp("crashed"))
    for stage, after in (("teacher", 2.0), ("stage1", 6.0), ("stage2", 6.0), ("rerank", 4.0)):
        _repro_killed_in(crashed, stage, after)
    # A crash while appending to the rerank progress file: its last record is cut mid-line.
    progress = crashed / "artifacts/rerank/progress.jsonl"
    if progress.exists() and progress.stat().st_size > 40:
        data = progress.read_bytes()
        progress.write_bytes(data[: len(data) - 17])
    sh(crashed, "dvc", "repro", timeout=1800)

    for name in OUTPUTS:
        assert (crashed / name).read_bytes() == (clean / name).read_bytes(), f"{name} differs after the crashes"
    # The MLflow runs the kills left RUNNING are marked KILLED, none is left RUNNING.
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{crashed / 'experiments/mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["rankvideo"], output_format="list")
    assert "RUNNING" not in {r.info.status for r in runs}
