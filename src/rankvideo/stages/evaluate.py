"""Stage `evaluate`: nDCG@k, R@k, RR@10 of the reranked run and of the first stage, per split,
with deltas and a paired t-test; also the file mode of `python src/evaluate.py run=... qrels=...`.

Outputs (pipeline mode, under `paths.eval_dir`):
    details/<split>.json  measures (ir-measures names) -> mean, per_query, compare (rerank vs first stage)
    metrics.json          compact means for `dvc metrics show/diff`
    plots/ndcg_<split>_<system>.json   nDCG@k curves for `dvc plots show`
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..data.benchmark import Benchmark
from ..data.official import read_qrels_any
from ..data.trec import read_run
from ..eval import compare, evaluate, format_table, ndcg_curve, pooled_recall, to_json_dict
from ..tracking import tracked_run
from ..utils.io import write_json

log = logging.getLogger(__name__)


class NothingToEvaluateError(ValueError):
    """A run with no ranking, or none for a judged query: every measure would be a silent 0."""


def check_overlap(run: dict, qrels: dict, run_path, qrels_path) -> None:
    """Refuse an empty run, or a run that ranks no query the qrels judge, naming both files."""
    ranked = {q for q, docs in run.items() if docs}
    if not ranked:
        raise NothingToEvaluateError(f"{run_path}: the run ranks no document (empty file?); nothing to evaluate against "
                                     f"{qrels_path} (pass allow_empty=true to report zeros)")
    judged = {q for q, docs in qrels.items() if docs}
    if not ranked & judged:
        raise NothingToEvaluateError(
            f"{run_path} and {qrels_path} share no query id (run: {', '.join(sorted(ranked)[:3])}...; qrels: "
            f"{', '.join(sorted(judged)[:3])}...): wrong qrels for this run? (pass allow_empty=true to report zeros)")


def evaluate_files(run_path: str, qrels_path: str, baseline_path: str | None = None, *, measures=None,
                   relevance_level: int = 1, allow_empty: bool = False, average: str = "all_judged") -> tuple[dict, str]:
    """Evaluate any run file against any qrels file (optionally against a baseline run, which also
    breaks score ties). Returns the JSON dict and the printed table. An empty run, or one sharing
    no query with the qrels, is an error unless `allow_empty`. `average`: see `eval_average`."""
    kwargs = {"relevance_level": relevance_level, "average": average}
    if measures:
        kwargs["measures"] = tuple(measures)
    qrels = read_qrels_any(qrels_path)  # TREC qrels, or MultiVENT judgments JSONL by extension
    run = read_run(run_path)
    if not allow_empty:
        check_overlap(run, qrels, run_path, qrels_path)
    base = read_run(baseline_path) if baseline_path else None
    result = evaluate(run, qrels, tiebreak_run=base, **kwargs)
    comparison = compare(result, evaluate(base, qrels, **kwargs)) if base is not None else None
    return to_json_dict(result, comparison), format_table(result, comparison)


def eval_average(cfg: DictConfig) -> str:
    """`eval.average`: `all_judged` (default; trec_eval -c: a judged query without a ranking counts
    0) or `ranked` (the mean over the judged queries the run ranks, as the official evaluate.py)."""
    return str(cfg.eval.get("average", "all_judged"))


def evaluate_split(bench: Benchmark, split: str, first: dict, reranked: dict, **kwargs):
    """First stage and reranked run on one split's queries (the reranked run's ties broken by the
    first stage); returns (first stage result, reranked result, paired comparison)."""
    qrels = bench.qrels(split)
    qids = {q.qid for q in bench.queries(split)}
    fs = evaluate({q: first[q] for q in first if q in qids}, qrels, **kwargs)
    rr = evaluate({q: reranked[q] for q in reranked if q in qids}, qrels, tiebreak_run=first, **kwargs)
    return fs, rr, compare(rr, fs)


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    if "run" in cfg and cfg.run:
        return _file_mode(cfg, source, pipeline_cfg)
    return _pipeline_mode(cfg, source, pipeline_cfg)


def _file_mode(cfg: DictConfig, source: str, pipeline_cfg: DictConfig | None) -> dict:
    if not cfg.get("qrels"):
        raise ValueError("evaluate: `run=PATH` needs `qrels=PATH` too (and optionally out=PATH.json, baseline=PATH)")
    inputs = [str(cfg.run), str(cfg.qrels)] + ([str(cfg.baseline)] if cfg.get("baseline") else [])
    args = (str(cfg.run), str(cfg.qrels), cfg.get("baseline"))
    kwargs = {"measures": list(cfg.eval.measures), "relevance_level": int(cfg.eval.relevance_level),
              "allow_empty": bool(cfg.get("allow_empty", False)), "average": eval_average(cfg)}
    tracking = bool(OmegaConf.select(cfg, "tracking.enabled", default=True))
    if not tracking or "fork" not in multiprocessing.get_all_start_methods():
        with tracked_run(cfg, "evaluate", source=source, pipeline_cfg=pipeline_cfg, inputs=inputs) as tr:
            out, table = evaluate_files(*args, **kwargs)
            _report_files(cfg, tr, out, table)
        return out
    # Opening the MLflow run takes seconds (mostly importing MLflow and its store), as long as
    # evaluating a MultiVENT-sized run: the evaluation runs beside it in a forked process, and its
    # result or error is taken inside the run, so a failed evaluation still marks the run FAILED.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        result = pool.submit(evaluate_files, *args, **kwargs)
        with tracked_run(cfg, "evaluate", source=source, pipeline_cfg=pipeline_cfg, inputs=inputs) as tr:
            out, table = result.result()
            _report_files(cfg, tr, out, table)
    return out


def _report_files(cfg: DictConfig, tr, out: dict, table: str) -> None:
    print(table)
    if cfg.get("out"):
        write_json(cfg.out, out)
        tr.log_artifact(cfg.out, "eval")
    tr.log_metrics({k: v for k, v in out.items() if isinstance(v, float)})


def _pipeline_mode(cfg: DictConfig, source: str, pipeline_cfg: DictConfig | None) -> dict:
    bench = Benchmark(cfg.paths.benchmark)
    out_dir = Path(cfg.paths.eval_dir)
    first = read_run(cfg.paths.first_stage_run)
    reranked = read_run(cfg.paths.reranked_run)
    kwargs = {"measures": tuple(cfg.eval.measures), "relevance_level": int(cfg.eval.relevance_level),
              "average": eval_average(cfg)}
    metrics: dict = {}
    others = {}  # runs reported next to the reranker, read once for all splits
    for name, path in (cfg.eval.get("compare_runs") or {}).items():
        if Path(path).exists():
            others[name] = read_run(path)
        else:
            log.warning("eval.compare_runs.%s: %s does not exist (run the stage that writes it); not reported", name, path)
    inputs = [str(cfg.paths.benchmark), str(cfg.paths.first_stage_run), str(cfg.paths.reranked_run),
              *[str(p) for name, p in (cfg.eval.get("compare_runs") or {}).items() if name in others]]
    with tracked_run(cfg, "evaluate", source=source, pipeline_cfg=pipeline_cfg, inputs=inputs) as tr:
        for split in cfg.eval.splits:
            qrels = bench.qrels(split)
            qids = {q.qid for q in bench.queries(split)}
            check_overlap({q: reranked[q] for q in reranked if q in qids}, qrels, cfg.paths.reranked_run,
                          bench.qrels_path(split))
            fs, rr, comparison = evaluate_split(bench, split, first, reranked, **kwargs)
            write_json(out_dir / "details" / f"{split}.json", to_json_dict(rr, comparison))
            for system, res in (("first_stage", fs), ("rerank", rr)):
                write_json(out_dir / "plots" / f"ndcg_{split}_{system}.json", ndcg_curve(res))
            # Pooled over the split: of all relevant videos, the share the first stage hands to the
            # reranker (its top rerank.depth). Bounds what reranking can recover.
            depth = int(cfg.rerank.depth)
            pooled = pooled_recall({q: first[q] for q in first if q in qids}, qrels, depth,
                                   relevance_level=int(cfg.eval.relevance_level))
            metrics[split] = {"first_stage": dict(fs.mean), "rerank": dict(rr.mean),
                              f"first_stage_pooled_R@{depth}": pooled,
                              "delta": {m: c["delta"] for m, c in comparison.items()},
                              "p_value": {m: c["p_value"] for m, c in comparison.items()},
                              "num_queries": rr.num_queries}
            print(f"\n[{split}] reranked ({cfg.rerank.name}) vs first stage ({cfg.retrieval.name})")
            print(format_table(rr, comparison))
            for name, other in others.items():
                res = evaluate({q: other[q] for q in other if q in qids}, qrels, tiebreak_run=first, **kwargs)
                cmp_other = compare(res, fs)
                metrics[split][name] = dict(res.mean)
                metrics[split][f"{name}_p_value"] = {m: c["p_value"] for m, c in cmp_other.items()}
                write_json(out_dir / "details" / f"{split}_{name}.json", to_json_dict(res, cmp_other))
                tr.log_metrics({f"{split}/{name}/{m}": v for m, v in res.mean.items()})
                print(f"\n[{split}] {name} vs first stage")
                print(format_table(res, cmp_other))
            tr.log_metrics({f"{split}/first_stage/{m}": v for m, v in fs.mean.items()})
            tr.log_metrics({f"{split}/first_stage/pooled_R@{depth}": pooled})
            tr.log_metrics({f"{split}/rerank/{m}": v for m, v in rr.mean.items()})
            tr.log_metrics({f"{split}/delta/{m}": c["delta"] for m, c in comparison.items()})
        write_json(out_dir / "metrics.json", metrics)
        tr.log_artifact(out_dir, "eval")
        _log_curve_figure(tr, out_dir, metrics)
    return metrics


def _log_curve_figure(tr, out_dir: Path, metrics: dict) -> None:
    """nDCG@k curves as a PNG in MLflow (people would rather look than read)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, (split, m) in zip(axes[0], metrics.items()):
        for system in ("first_stage", "rerank"):
            pts = sorted((int(k.split("@")[1]), v) for k, v in m[system].items() if k.startswith("nDCG@"))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=system)
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_ylabel("nDCG@k")
        ax.set_title(split)
        ax.legend()
    fig.tight_layout()
    path = out_dir / "plots" / "ndcg_at_k.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    tr.log_artifact(path, "eval")
