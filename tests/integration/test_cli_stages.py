"""The Hydra entry scripts write into their own run folder, never into DVC's artifacts/, read the
pipeline's outputs by default, and honour explicit paths."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def _run(cwd, script, *overrides):
    p = subprocess.run(
        [sys.executable, str(REPO / "src" / f"{script}.py"), "debug=tiny", "data.num_workers=1", *overrides],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def test_entry_scripts_write_to_their_run_folder(tmp_path):
    exp = f"paths.experiments={tmp_path / 'experiments'}"
    art = f"paths.artifacts={tmp_path / 'artifacts'}"
    _run(tmp_path, "synthesize", exp, art, f"hydra.run.dir={tmp_path / 'run1'}")
    assert (tmp_path / "run1" / "benchmark" / "corpus.jsonl").exists()
    assert not (tmp_path / "artifacts").exists(), "a CLI run wrote into the DVC outputs"

    _run(tmp_path, "retrieve", exp, art, f"paths.benchmark={tmp_path / 'run1' / 'benchmark'}",
         f"hydra.run.dir={tmp_path / 'run2'}")
    lines = (tmp_path / "run2" / "retrieve" / "run.trec").read_text().splitlines()
    assert lines and lines[0].split()[-1] == "first_stage_bm25"
    assert (tmp_path / "run2" / ".hydra" / "config.yaml").exists()
    assert not (tmp_path / "artifacts").exists()


def test_train_without_inputs_says_what_to_run(tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "src" / "train.py"), f"paths.artifacts={tmp_path / 'none'}",
                        f"paths.experiments={tmp_path / 'e'}", f"hydra.run.dir={tmp_path / 'r'}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert "no corpus.jsonl" in p.stderr and "synthesize" in p.stderr
