"""Stage `generate_queries`: training queries written by a language model from each video's text
proxies (paper section 3.2), for the benchmark in `paths.benchmark`.

A standalone run writes into `generator.out_dir` (`queries.jsonl`, `queries_train.tsv`,
`qrels_train.trec`, `drops.json`; see `rankvideo.querygen.generate`); `synthesize` with
`synthesis.queries=generator` calls `generate_into_benchmark` to add them to the benchmark it built.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..data.benchmark import Benchmark
from ..querygen.generate import merge_into_benchmark, run_generation, write_generated
from ..tracking import tracked_run

log = logging.getLogger(__name__)


def _count(cfg: DictConfig, corpus_size: int) -> int:
    n = OmegaConf.select(cfg, "generator.num_queries", default=None)
    if n is None and cfg.data.name == "synthetic":
        n = int(cfg.data.synthetic_train_queries)
    n = corpus_size if n is None else int(n)
    if n <= 0:
        raise ValueError("generate_queries: no jobs; set data.synthetic_train_queries (embedded world) or generator.num_queries")
    return n


def _grade(cfg: DictConfig) -> int:
    """The source video's judgment: the data's positive grade (3 on the embedded world, 1 on MultiVENT 2.0)."""
    return max(1, int(OmegaConf.select(cfg, "data.positive_min_grade", default=3)))


def generate(cfg: DictConfig, bench_dir: str | Path, make_generator=None) -> tuple[list[dict], dict, dict]:
    bench = Benchmark(bench_dir)
    corpus = bench.corpus()
    gc = OmegaConf.to_container(cfg.generator, resolve=True)
    variants = OmegaConf.to_container(cfg.synthesis.variants, resolve=True)
    existing = [q.text for q in bench.queries()]
    rows, drops, counts = run_generation(corpus, gc, variants, count=_count(cfg, len(corpus)), seed=int(cfg.seed),
                                         work_dir=gc["work_dir"], existing=existing, make_generator=make_generator)
    return rows, drops, {"generator": gc["name"], **counts}


def _log(tr, rows, drops, counts, seconds):
    tr.set_tags({"config.generator": counts["generator"]})
    tr.log_metrics({"generated/kept": len(rows), "generated/jobs": counts["jobs"],
                    "generated/answers_resumed": counts["answers_resumed"],
                    "generated/answers_generated_now": counts["answers_generated_now"],
                    "generated/seconds": round(seconds, 2), **{f"dropped/{k}": v for k, v in drops.items()}})


def generate_into_benchmark(cfg: DictConfig, bench_dir: str | Path, tr=None, make_generator=None) -> dict:
    """Generate queries for the benchmark in `bench_dir` and add them to it (synthesize's path)."""
    t0 = time.perf_counter()
    rows, drops, counts = generate(cfg, bench_dir, make_generator)
    manifest = merge_into_benchmark(bench_dir, rows, _grade(cfg), {"drops": drops, "generator": counts["generator"],
                                                                   "jobs": counts["jobs"]})
    if tr is not None:
        _log(tr, rows, drops, counts, time.perf_counter() - t0)
    return manifest


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None, make_generator=None) -> dict:
    t0 = time.perf_counter()
    out = Path(str(cfg.generator.out_dir))
    with tracked_run(cfg, "generate_queries", source=source, pipeline_cfg=pipeline_cfg, inputs=[str(cfg.paths.benchmark)]) as tr:
        rows, drops, counts = generate(cfg, cfg.paths.benchmark, make_generator)
        write_generated(out, rows, drops, _grade(cfg), {"generator": counts["generator"], "jobs": counts["jobs"],
                                                        "kept": len(rows)})
        _log(tr, rows, drops, counts, time.perf_counter() - t0)
        for name in ("queries.jsonl", "drops.json"):
            tr.log_artifact(out / name, "generated_queries")
    return {"kept": len(rows), "drops": drops, **counts}
