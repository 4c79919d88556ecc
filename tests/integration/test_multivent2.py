"""`data=multivent2` end to end on a miniature corpus laid out like the real one: the official shard
layout with numeric ids, queries CSVs, binary train and graded test judgments JSONL, caption and
ASR features, plus the awkward cases (a judged query id that does not exist, a judged video missing
from disk, a query without judgments)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import make_scratch_project, sh, tiny_run_cfg
from rankvideo.data.benchmark import Benchmark
from rankvideo.data.official import shard_path, write_judgments
from rankvideo.data.trec import read_trec_run
from rankvideo.stages import stage_fn

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _write_csv(path: Path, queries: dict[str, str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Query_id", "query"])
        w.writerows(queries.items())


@pytest.fixture(scope="module")
def miniature(tmp_path_factory):
    """A MultiVENT-shaped folder made from the tiny embedded benchmark's clips and proxies."""
    root = tmp_path_factory.mktemp("mv2")
    src_cfg = tiny_run_cfg(root / "src")
    stage_fn("synthesize")(src_cfg, source="test", pipeline_cfg=src_cfg)
    bench = Benchmark(src_cfg.paths.benchmark)
    data = root / "data" / "multivent2"
    ids = {d.doc_id: str(150 + 7 * i) for i, d in enumerate(bench.corpus())}  # numeric ids over several shards
    captions, asr = [], []
    for d in bench.corpus():
        target = shard_path(data / "videos", ids[d.doc_id])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bench.video_path(d), target)
        captions.append({"doc_id": ids[d.doc_id], "text": d.caption})
        asr.append({"doc_id": ids[d.doc_id], "text": d.asr})
    (data / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in captions))
    (data / "asr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in asr))
    train_q = {q.qid: q.text for s in ("train", "val") for q in bench.queries(s)}
    test_q = {q.qid: q.text for q in bench.queries("test")}
    test_q["q_unjudged"] = "a query nobody judged"
    _write_csv(data / "multivent_2_q.csv", train_q)
    _write_csv(data / "multivent_2_test_q.csv", test_q)
    # Train: binary (every graded video is relevant); test: graded 0-3, as released.
    train_j = {q: {ids[d]: 1 for d, g in bench.qrels(s).get(q, {}).items() if g > 0}
               for s in ("train", "val") for q in (x.qid for x in bench.queries(s))}
    train_j = {q: d for q, d in train_j.items() if d}
    test_j = {q: {ids[d]: g for d, g in bench.qrels("test").get(q, {}).items()} for q in test_q if q in bench.qrels("test")}
    first_test = next(iter(test_j))
    test_j[first_test]["999999"] = 2      # judged, but the video is not on disk
    train_j["no_such_query"] = {ids[next(iter(ids))]: 1}   # a judged query id that is not in the CSV
    write_judgments(data / "multivent_2_j.jsonl", train_j)
    write_judgments(data / "multivent_2_test_j.jsonl", test_j)
    return root, data, ids, first_test


def _cfg(root: Path, data: Path, *extra: str):
    return tiny_run_cfg(root / "run", "data=multivent2", f"data.root={data}", f"data.captions={data / 'captions.jsonl'}",
                        f"data.asr={data / 'asr.jsonl'}", "retrieval.fields=[caption,asr]", "data.val_fraction=0.25", *extra)


def test_multivent2_benchmark_folder(miniature, caplog):
    root, data, ids, first_test = miniature
    cfg = _cfg(root, data)
    manifest = stage_fn("synthesize")(cfg, source="test", pipeline_cfg=cfg)
    bench = Benchmark(cfg.paths.benchmark)
    corpus = {d.doc_id: d for d in bench.corpus()}
    assert set(corpus) == set(ids.values())  # every video on disk, none invented
    some = next(iter(ids.values()))
    assert Path(corpus[some].video) == shard_path(data / "videos", some).resolve()
    assert corpus[some].caption and corpus[some].asr
    assert manifest["judged_videos_missing"] == 1 and "999999" not in corpus
    assert bench.qrels("test")[first_test]["999999"] == 2  # still judged: it counts against recall
    assert {r for d in bench.qrels("train").values() for r in d.values()} == {1}
    assert max(r for d in bench.qrels("test").values() for r in d.values()) == 3
    counts = manifest["num_queries"]
    assert counts["val"] == round(0.25 * (counts["train"] + counts["val"]))
    assert "q_unjudged" in {q.qid for q in bench.queries("test")} and "q_unjudged" not in bench.qrels("test")
    assert "no_such_query" not in bench.qrels("train")
    assert "1 judged query id(s) not in" in caplog.text and "have no judgments" in caplog.text
    assert "1 judged video(s) not on disk" in caplog.text
    # Same inputs, same seed: the same folder, byte for byte.
    again = stage_fn("synthesize")(cfg, source="test", pipeline_cfg=cfg)
    assert again["sha256"] == manifest["sha256"]


def test_multivent2_pipeline_end_to_end(miniature):
    root, data, _, _ = miniature
    cfg = _cfg(root, data, "rerank.splits=[test]", "eval.splits=[test]")
    for name in ("synthesize", "retrieve", "teacher", "build_model", "stage1", "stage2", "rerank", "evaluate"):
        stage_fn(name)(cfg, source="test", pipeline_cfg=cfg)
    run = read_trec_run(cfg.paths.reranked_run)
    first = read_trec_run(cfg.paths.first_stage_run)
    bench = Benchmark(cfg.paths.benchmark)
    ranked_test = {q.qid for q in bench.queries("test")} & set(first)
    assert set(bench.qrels("test")) <= ranked_test and ranked_test <= set(run)
    metrics = json.loads((Path(cfg.paths.eval_dir) / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["rerank"]["nDCG@10"] <= 1.0
    # Queries without judgments are not evaluated; the judged ones are.
    assert metrics["test"]["num_queries"] == len(bench.qrels("test"))


@pytest.mark.slow  # about 100 s on 2 cores (a scratch DVC project); the pipeline itself is test_multivent2_pipeline_end_to_end
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a DVC repo")
def test_multivent2_through_dvc_exp_run(miniature, tmp_path):
    """The steps of docs/benchmark.md: put the files under data/multivent2, `dvc commit data.dvc`, then one
    `dvc exp run -S data=multivent2 ...` builds the benchmark from them and runs the pipeline."""
    _, data, ids, _ = miniature
    scratch = make_scratch_project(tmp_path / "project")
    shutil.copytree(data, scratch / "data" / "multivent2")
    before = (scratch / "data.dvc").read_text()
    sh(scratch, "dvc", "commit", "-f", "data.dvc")
    assert (scratch / "data.dvc").read_text() != before  # the data version now covers the corpus
    out = sh(scratch, "dvc", "exp", "run", "-n", "mv2", "-S", "data=multivent2",
             "-S", "data.captions=data/multivent2/captions.jsonl", "-S", "data.asr=data/multivent2/asr.jsonl",
             "-S", "retrieval.fields=[caption,asr]", "-S", "data.val_fraction=0.25", timeout=900)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}
    assert {"synthesize", "retrieve", "teacher", "stage1", "stage2", "rerank", "evaluate"} <= ran
    lock = yaml.safe_load((scratch / "dvc.lock").read_text())
    assert "data/multivent2" in {d["path"] for d in lock["stages"]["synthesize"]["deps"]}
    assert lock["stages"]["synthesize"]["params"]["params.yaml"]["data"]["name"] == "multivent2"
    corpus = Benchmark(scratch / "artifacts" / "benchmark").corpus()
    assert {d.doc_id for d in corpus} == set(ids.values())
    metrics = json.loads((scratch / "artifacts" / "evaluate" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["rerank"]["nDCG@10"] <= 1.0
    # Nothing changed since: a second repro does nothing.
    again = sh(scratch, "dvc", "repro")
    assert "Running stage" not in again
