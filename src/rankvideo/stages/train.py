"""`python src/train.py`: one training job, the unit that sweeps and studies repeat.

1. Stage 1: a finished stage 1 with this job's stage-1 key is reused (the pipeline's
   `artifacts/stage1`, or the stage-1 cache); otherwise it is trained once into the cache.
2. Stage 2, initialised from it, into the job's folder.
3. Reranking of `sweep.eval_splits` (default: val) with the trained model, and evaluation against
   the first stage, logged into stage 2's MLflow run (`val/rerank/nDCG_at_10`, ...) so that one run
   per job carries the loss weights (params) and what they gave (metrics).

Sweeps select on validation: a multirun or an Optuna study refuses `test` among the evaluated
splits. The test numbers of the chosen configuration come from an explicit single run,
`python src/train.py <its overrides> 'sweep.eval_splits=[val,test]'`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import lightning as L
from omegaconf import DictConfig, open_dict

from ..data.benchmark import Benchmark
from ..data.trec import read_run
from ..eval import format_table, to_json_dict
from ..tracking import StageRun
from ..utils.io import write_json
from .curriculum import ensure_stage1, run_stage2, stage_model_dir
from .evaluate import evaluate_split
from .rerank import rerank_with_model

log = logging.getLogger(__name__)


class SelectionOnTestError(ValueError):
    """A sweep asked to evaluate the test split."""


def check_selection_splits(splits: Sequence[str], context: str) -> None:
    """Sweeps and studies compare configurations on validation only."""
    if "test" in splits:
        raise SelectionOnTestError(
            f"{context} selects on validation: sweep.eval_splits={list(splits)} includes test. Choose the configuration on "
            "val, then compute its test numbers with one explicit run: "
            "python src/train.py <the chosen overrides> 'sweep.eval_splits=[val,test]'")


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None, *,
        callbacks: Sequence[L.Callback] = ()) -> dict:
    splits = [str(s) for s in cfg.sweep.eval_splits]
    s1_dir, s1 = ensure_stage1(cfg, source=source, pipeline_cfg=pipeline_cfg)
    with open_dict(cfg):
        cfg.paths.stage1_dir = str(s1_dir)

    def after_fit(tr: StageRun) -> dict:
        tr.set_tags({"rankvideo.stage1_key": s1["key"], "rankvideo.stage1_dir": s1_dir})
        if any(getattr(c, "pruned", False) for c in callbacks):
            log.info("stage 2 stopped early by the pruner: no final reranking")
            return {}
        return evaluate_job(cfg, tr, splits) if splits else {}

    s2 = run_stage2(cfg, source=source, pipeline_cfg=pipeline_cfg, callbacks=callbacks, after_fit=after_fit)
    return {"stage1": s1, "stage2": {k: v for k, v in s2.items() if k != "after_fit"}, "eval": s2.get("after_fit", {})}


def evaluate_job(cfg: DictConfig, tr: StageRun, splits: list[str]) -> dict:
    """Rerank `splits` with the job's stage-2 model and evaluate against the first stage; metrics
    into `tr` as `<split>/rerank/<measure>`, `<split>/first_stage/...`, `<split>/delta/...`."""
    rerank_dir, eval_dir = Path(cfg.paths.rerank_dir), Path(cfg.paths.eval_dir)
    rerank_with_model(cfg, stage_model_dir(cfg.paths.stage2_dir), tr, splits=splits, rerank_dir=rerank_dir,
                      out_run=Path(cfg.paths.reranked_run), metric_prefix="rerank/")
    bench = Benchmark(cfg.paths.benchmark)
    first, reranked = read_run(cfg.paths.first_stage_run), read_run(cfg.paths.reranked_run)
    kwargs = {"measures": tuple(cfg.eval.measures), "relevance_level": int(cfg.eval.relevance_level)}
    metrics: dict = {}
    for split in splits:
        fs, rr, comparison = evaluate_split(bench, split, first, reranked, **kwargs)
        write_json(eval_dir / "details" / f"{split}.json", to_json_dict(rr, comparison))
        metrics[split] = {"first_stage": dict(fs.mean), "rerank": dict(rr.mean),
                          "delta": {m: c["delta"] for m, c in comparison.items()},
                          "p_value": {m: c["p_value"] for m, c in comparison.items()}, "num_queries": rr.num_queries}
        tr.log_metrics({f"{split}/rerank/{m}": v for m, v in rr.mean.items()})
        tr.log_metrics({f"{split}/first_stage/{m}": v for m, v in fs.mean.items()})
        tr.log_metrics({f"{split}/delta/{m}": c["delta"] for m, c in comparison.items()})
        print(f"\n[{split}] reranked (this job's stage 2) vs first stage ({cfg.retrieval.name})")
        print(format_table(rr, comparison))
    write_json(eval_dir / "metrics.json", metrics)
    tr.log_artifact(eval_dir / "metrics.json", "eval")
    return metrics
