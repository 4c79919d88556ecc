"""Stage `retrieve`: the first stage, for every query of every split, written as a TREC run."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from ..data.benchmark import Benchmark
from ..data.trec import read_run, write_trec_run
from ..retrieval.bm25 import bm25_run
from ..tracking import tracked_run

log = logging.getLogger(__name__)


def first_stage(cfg: DictConfig, bench: Benchmark):
    r = cfg.retrieval
    queries = bench.queries()
    if r.name == "bm25":
        return bm25_run(bench.corpus(), queries, fields=tuple(r.fields), k1=r.k1, b=r.b, method=r.method, depth=r.depth)
    if r.name == "external":
        run = read_run(r.path)
        known = {q.qid for q in queries}
        missing = known - set(run)
        if missing:
            log.warning("external run %s has no ranking for %d of %d queries (they will score 0), e.g. %s",
                        r.path, len(missing), len(known), sorted(missing)[:5])
        extra = set(run) - known
        if extra:
            log.info("external run %s: ignoring %d queries not in the benchmark", r.path, len(extra))
        return {q: run[q] for q in run if q in known}
    raise ValueError(f"retrieval={r.name!r}: unknown first stage (bm25 | external)")


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    bench = Benchmark(cfg.paths.benchmark)
    with tracked_run(cfg, "retrieve", source=source, pipeline_cfg=pipeline_cfg, inputs=[str(cfg.paths.benchmark)]) as tr:
        ranking = first_stage(cfg, bench)
        write_trec_run(cfg.paths.first_stage_run, ranking, tag=f"first_stage_{cfg.retrieval.name}", depth=int(cfg.retrieval.depth))
        sizes = [len(v) for v in ranking.values()]
        stats = {"num_queries": len(ranking), "mean_candidates": sum(sizes) / max(len(sizes), 1)}
        tr.log_metrics(stats)
        tr.log_artifact(cfg.paths.first_stage_run, "run")
        log.info("first stage %s: %d queries, %.1f candidates on average -> %s", cfg.retrieval.name,
                 stats["num_queries"], stats["mean_candidates"], cfg.paths.first_stage_run)
    return stats
