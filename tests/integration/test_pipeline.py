"""The whole pipeline on the tiny config, in process: synthesize -> retrieve -> rerank -> evaluate,
with the MLflow record each stage leaves."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

from conftest import compose_cfg
from rankvideo.data.benchmark import Benchmark
from rankvideo.data.trec import read_trec_run
from rankvideo.stages import evaluate, rerank, retrieve, synthesize


@pytest.fixture
def pipeline(tiny_cfg):
    OmegaConf.resolve(tiny_cfg)
    results = {}
    for name, stage in (("synthesize", synthesize), ("retrieve", retrieve), ("rerank", rerank), ("evaluate", evaluate)):
        results[name] = stage.run(tiny_cfg, source="test", pipeline_cfg=tiny_cfg)
    return tiny_cfg, results


def _runs(cfg):
    mlflow.set_tracking_uri(f"sqlite:///{Path(cfg.paths.experiments).resolve()}/mlflow.db")
    return mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")


def test_outputs_and_metrics(pipeline):
    cfg, results = pipeline
    bench = Benchmark(cfg.paths.benchmark)
    manifest = bench.manifest()
    assert manifest["num_videos"] == 6 * 5
    assert sum(manifest["num_queries"].values()) == 30
    first = read_trec_run(cfg.paths.first_stage_run)
    assert set(first) == {q.qid for q in bench.queries()}
    assert all(len(v) <= cfg.retrieval.depth for v in first.values())

    # The passthrough reranker changes nothing, and says so.
    assert read_trec_run(cfg.paths.reranked_run) == first
    info = json.loads((Path(cfg.paths.rerank_dir) / "rerank_info.json").read_text())
    assert info["reranker"] == "passthrough" and "PASSTHROUGH" in info["note"]
    assert "passthrough" in Path(cfg.paths.reranked_run).read_text().splitlines()[0]
    # No model, so no stage-1-only run either: a note instead, and evaluate reports without it.
    assert rerank.run_stage1_only(cfg, source="test") == {}
    note = json.loads((Path(cfg.paths.rerank_stage1_dir) / "rerank_info.json").read_text())
    assert not (Path(cfg.paths.rerank_stage1_dir) / "run.trec").exists() and "no stage-1 model" in note["note"]

    metrics = json.loads((Path(cfg.paths.eval_dir) / "metrics.json").read_text())
    assert set(metrics) == {"test"}
    test = metrics["test"]
    assert test["rerank"] == test["first_stage"]
    assert all(d == 0 for d in test["delta"].values())
    assert all(p == 1.0 for p in test["p_value"].values())
    assert 0 < test["first_stage"]["nDCG@10"] <= 1
    assert "teacher_text" not in test  # eval.compare_runs whose file is missing: a logged skip, no number
    details = json.loads((Path(cfg.paths.eval_dir) / "details" / "test.json").read_text())
    assert details["nDCG@10"] == test["rerank"]["nDCG@10"]
    assert set(details["per_query"]) == {q.qid for q in bench.queries("test")}
    curve = json.loads((Path(cfg.paths.eval_dir) / "plots" / "ndcg_test_rerank.json").read_text())
    assert [p["k"] for p in curve] == [5, 10, 20, 50, 100]


def test_mlflow_records_each_stage(pipeline):
    cfg, _ = pipeline
    runs = _runs(cfg)
    assert sorted(r.info.run_name for r in runs) == ["evaluate", "rerank", "retrieve", "synthesize"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # One pipeline key groups the stage runs of one pipeline execution.
    assert len({r.data.tags["rankvideo.pipeline"] for r in runs}) == 1
    by = {r.info.run_name: r for r in runs}
    ev = by["evaluate"]
    assert ev.data.params["eval.measures"].startswith('["nDCG@5"')
    assert ev.data.params["data.num_events"] == "6"
    assert ev.data.tags["mlflow.source.git.commit"]
    assert ev.data.tags["git.dirty"] in ("True", "False", "None")
    assert ev.data.tags["pkg.torch"] == "2.14.1"
    assert ev.data.tags["pkg.mlflow"] == "3.17.2"
    assert any(k.startswith("data.") and "benchmark" in k for k in ev.data.tags)
    assert ev.data.metrics["test/rerank/nDCG_at_10"] == pytest.approx(ev.data.metrics["test/first_stage/nDCG_at_10"])
    assert by["rerank"].data.tags["rerank.passthrough"] == "true"
    client = mlflow.MlflowClient()
    files = {a.path for a in client.list_artifacts(ev.info.run_id, "run_info")}
    assert {"run_info/config.yaml", "run_info/packages.json", "run_info/data_versions.json"} <= files
    local = client.download_artifacts(ev.info.run_id, "run_info/config.yaml")
    logged = OmegaConf.load(local)
    assert logged.data.num_queries == 30 and logged.tracking.uri == cfg.tracking.uri


def test_same_seed_same_metrics(tiny_cfg, tmp_path):
    """Same seed, same config, same data: same metrics, in a fresh folder."""
    OmegaConf.resolve(tiny_cfg)
    outs = []
    for sub in ("a", "b"):
        cfg = OmegaConf.merge(tiny_cfg, {"paths": {
            "benchmark": str(tmp_path / sub / "benchmark"), "retrieve_dir": str(tmp_path / sub / "retrieve"),
            "first_stage_run": str(tmp_path / sub / "retrieve" / "run.trec"), "rerank_dir": str(tmp_path / sub / "rerank"),
            "reranked_run": str(tmp_path / sub / "rerank" / "run.trec"), "eval_dir": str(tmp_path / sub / "evaluate")},
            "tracking": {"enabled": False}})
        for stage in (synthesize, retrieve, rerank, evaluate):
            stage.run(cfg)
        outs.append((tmp_path / sub / "evaluate" / "metrics.json").read_bytes())
        outs.append((tmp_path / sub / "benchmark" / "manifest.json").read_bytes())
    assert outs[0] == outs[2] and outs[1] == outs[3]


def test_failed_stage_marks_run_failed(tiny_cfg):
    OmegaConf.resolve(tiny_cfg)
    with pytest.raises(FileNotFoundError, match="no corpus.jsonl"):
        retrieve.run(tiny_cfg, source="test")
    # The benchmark was never built: the retrieve run must not be left open or FINISHED.
    runs = _runs(tiny_cfg)
    assert [r.info.status for r in runs] in ([], ["FAILED"])


def test_external_first_stage_from_official_json(tiny_cfg, tmp_path):
    """retrieval=external reads the official {qid: {doc_id: score}} JSON; queries it lacks are
    logged and score 0 downstream."""
    from rankvideo.data.trec import write_json_run

    OmegaConf.resolve(tiny_cfg)
    synthesize.run(tiny_cfg)
    bench = Benchmark(tiny_cfg.paths.benchmark)
    qids = [q.qid for q in bench.queries()]
    docs = sorted(d.doc_id for d in bench.corpus())
    ext = {q: {d: float(len(docs) - i) for i, d in enumerate(docs[:5])} for q in qids[1:]}
    ext["not-a-benchmark-query"] = {docs[0]: 1.0}
    write_json_run(tmp_path / "ranking.json", ext)
    cfg = compose_cfg(["debug=tiny", "retrieval=external", f"retrieval.path={tmp_path / 'ranking.json'}", "retrieval.depth=3",
                       f"paths.artifacts={tmp_path / 'artifacts'}", f"paths.experiments={tmp_path / 'experiments'}"])
    assert cfg.retrieval.source == str(tmp_path / "ranking.json")  # what DVC tracks as the stage's dep
    retrieve.run(cfg)
    run = read_trec_run(cfg.paths.first_stage_run)
    assert set(run) == set(qids[1:])
    assert all(list(v) == docs[:3] for v in run.values())


def test_evaluate_stage_reads_eval_average(pipeline):
    """eval.average=ranked: a test query the reranked run misses is left out of the mean rather than
    counted as 0 (the per-query values of the others do not change)."""
    from rankvideo.data.trec import write_trec_run

    cfg, _ = pipeline
    reranked = read_trec_run(cfg.paths.reranked_run)
    bench = Benchmark(cfg.paths.benchmark)
    qrels = bench.qrels("test")
    test_q = sorted(q.qid for q in bench.queries("test") if any(r >= 1 for r in qrels.get(q.qid, {}).values()))
    dropped = test_q[0]
    write_trec_run(cfg.paths.reranked_run, {q: d for q, d in reranked.items() if q != dropped}, tag="dropped")
    details = {}
    for average in ("all_judged", "ranked"):
        cfg.eval.average = average
        evaluate.run(cfg, source="test", pipeline_cfg=cfg)
        details[average] = json.loads((Path(cfg.paths.eval_dir) / "details" / "test.json").read_text())
    allj, ranked = details["all_judged"], details["ranked"]
    assert allj["per_query"][dropped]["nDCG@10"] == 0.0 and dropped not in ranked["per_query"]
    assert set(ranked["per_query"]) == {q for q in test_q if q != dropped and reranked.get(q)}
    assert ranked["num_queries"] == len(ranked["per_query"]) < allj["num_queries"]
    kept = ranked["per_query"]
    assert all(kept[q] == allj["per_query"][q] for q in kept)
    assert ranked["nDCG@10"] == pytest.approx(sum(v["nDCG@10"] for v in kept.values()) / len(kept))
    assert allj["nDCG@10"] == pytest.approx(sum(v["nDCG@10"] for v in allj["per_query"].values()) / allj["num_queries"])
