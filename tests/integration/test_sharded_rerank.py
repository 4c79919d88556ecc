"""Reranking as Lightning `predict` sharded over two processes (CPU, gloo): the same run as one
process, byte for byte, and a resume with another number of ranks scores only what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, tiny_run_cfg
from rankvideo.stages import stage_fn

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    cfg = tiny_run_cfg(root, "tracking.enabled=false")
    for name in ("synthesize", "retrieve", "build_model", "stage1", "stage2"):
        stage_fn(name)(cfg, source="test", pipeline_cfg=cfg)
    return root


def _rerank_cli(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, str(REPO / "src" / "rerank.py"), "debug=tiny", f"paths.artifacts={root / 'artifacts'}",
            f"paths.experiments={root / 'experiments'}", "tracking.enabled=false", f"paths.rerank_dir={out}",
            f"hydra.run.dir={out.parent / (out.name + '_hydra')}", *extra]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.slow  # about 60 s: two torchrun launches and a resume
def test_two_ranks_give_the_one_process_run_and_resume_across_rank_counts(trained):
    root = trained
    one, two = root / "rerank_1", root / "rerank_2"
    p = _rerank_cli(root, one)
    assert p.returncode == 0, p.stderr[-3000:]
    p = _rerank_cli(root, two, "trainer.devices=2", "trainer.strategy=ddp")
    assert p.returncode == 0, p.stderr[-3000:]
    # Each rank scored its own share into its own progress file; together they are the plan.
    ranks = [two / "progress.rank0.jsonl", two / "progress.rank1.jsonl"]
    shares = [{json.loads(l)["doc_id"] for l in f.read_text().splitlines()[1:]} for f in ranks]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    info = json.loads((two / "rerank_info.json").read_text())
    assert len(shares[0] | shares[1]) == info["videos"]
    # Merged deterministically: the same run and info as one process, byte for byte.
    assert (two / "run.trec").read_bytes() == (one / "run.trec").read_bytes()
    assert (two / "rerank_info.json").read_bytes() == (one / "rerank_info.json").read_bytes()

    # Interrupted: rank 1 lost its last video. Resumed with ONE process: only that video is scored.
    lines = ranks[1].read_text().splitlines()
    lost = json.loads(lines[-1])["doc_id"]
    ranks[1].write_text("\n".join(lines[:-1]) + "\n")
    (two / "run.trec").unlink()
    p = _rerank_cli(root, two)
    assert p.returncode == 0, p.stderr[-3000:]
    rescored = [json.loads(l)["doc_id"] for l in (two / "progress.jsonl").read_text().splitlines()[1:]]
    assert rescored == [lost]
    assert (two / "run.trec").read_bytes() == (one / "run.trec").read_bytes()

    # Run again with nothing left to score (every video done): the run is rebuilt from the
    # progress files alone, byte for byte, and no video is scored.
    (two / "run.trec").unlink()
    p = _rerank_cli(root, two)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (two / "run.trec").read_bytes() == (one / "run.trec").read_bytes()
    assert [json.loads(l)["doc_id"] for l in (two / "progress.jsonl").read_text().splitlines()[1:]] == [lost]


@pytest.mark.slow  # about a minute: `python -m pytest -m slow`
def test_decoding_in_workers_gives_the_same_run_and_a_bad_video_is_a_skip(trained, monkeypatch, caplog):
    """rerank.num_workers=2: videos are decoded in DataLoader workers beside the scoring, with the
    run of the in-process reader byte for byte; a video whose decoding fails in a worker (a
    VideoReadError, or any other exception) is a logged skip and the run finishes."""
    import logging

    from rankvideo.data.clips import ClipStore
    from rankvideo.data.video import VideoReadError

    root = trained
    runs = {}
    for workers in (0, 2):
        out = root / f"rerank_w{workers}"
        cfg = tiny_run_cfg(root, "tracking.enabled=false", f"paths.rerank_dir={out}",
                           f"paths.reranked_run={out / 'run.trec'}", f"rerank.num_workers={workers}")
        stage_fn("rerank")(cfg, source="test", pipeline_cfg=cfg)
        runs[workers] = out
    assert (runs[2] / "run.trec").read_bytes() == (runs[0] / "run.trec").read_bytes()

    docs = sorted(json.loads(l)["doc_id"] for l in (runs[0] / "progress.jsonl").read_text().splitlines()[1:])
    bad = {docs[0]: VideoReadError("video file 'x.mp4' is truncated"), docs[1]: RuntimeError("decoder crashed")}
    read = ClipStore.read

    def failing(self, doc):
        if doc in bad:
            raise bad[doc]
        return read(self, doc)

    monkeypatch.setattr(ClipStore, "read", failing)  # inherited by the forked workers
    out = root / "rerank_bad"
    cfg = tiny_run_cfg(root, "tracking.enabled=false", f"paths.rerank_dir={out}",
                       f"paths.reranked_run={out / 'run.trec'}", "rerank.num_workers=2")
    with caplog.at_level(logging.WARNING):
        stage_fn("rerank")(cfg, source="test", pipeline_cfg=cfg)
    info = json.loads((out / "rerank_info.json").read_text())
    assert info["skipped_videos"] == {docs[0]: "video file 'x.mp4' is truncated",
                                      docs[1]: "RuntimeError: decoder crashed"}
    assert f"skipping video {docs[1]}" in caplog.text
    assert info["pairs_unscored"] > 0 and (out / "run.trec").exists()
