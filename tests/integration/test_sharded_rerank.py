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
    # Each rank scored its own share into its own progress file; rank 0 merged them into the
    # journal one process writes and removed them. The run and its info are the one-process ones
    # byte for byte; the journal holds the same records in the same order, its scores equal up to
    # float rounding (a rank runs on fewer threads than one process).
    assert "rerank (rank 0 of 2)" in p.stderr and "rerank (rank 1 of 2)" in p.stderr
    for name in ("run.trec", "rerank_info.json"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    merged, alone = ([json.loads(line) for line in (d / "progress.jsonl").read_text().splitlines()] for d in (two, one))
    assert merged[0] == alone[0] and len(merged) == len(alone)
    for got, want in zip(merged[1:], alone[1:]):
        assert (got["doc_id"], got["keys"]) == (want["doc_id"], want["keys"])
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-4)
    assert not list(two.glob("progress.rank*.jsonl"))

    # Interrupted: the two ranks' files as a kill leaves them, rank 1's last video lost. Resumed
    # with ONE process: only that video is scored, and the folder is the one-process one again.
    header, *records = (one / "progress.jsonl").read_text().splitlines()
    shares = [records[0::2], records[1::2]]
    lost = json.loads(shares[1].pop())
    (two / "progress.jsonl").unlink()
    (two / "run.trec").unlink()
    for rank, share in enumerate(shares):
        (two / f"progress.rank{rank}.jsonl").write_text("\n".join([header, *share]) + "\n")
    p = _rerank_cli(root, two)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f": {len(lost['scores'])} pairs scored" in p.stdout + p.stderr
    for name in ("run.trec", "rerank_info.json", "progress.jsonl"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert not list(two.glob("progress.rank*.jsonl"))

    # Run again with nothing left to score (every video done): the run is rebuilt from the
    # progress file alone, byte for byte, and no video is scored.
    (two / "run.trec").unlink()
    p = _rerank_cli(root, two)
    assert p.returncode == 0, p.stderr[-3000:]
    assert ": 0 pairs scored" in p.stdout + p.stderr
    assert (two / "run.trec").read_bytes() == (one / "run.trec").read_bytes()


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
