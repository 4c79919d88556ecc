"""Stage `rerank`: rescore the head of the first-stage list, keep the tail untouched.

Only `rerank=passthrough` exists so far: it writes the first-stage order unchanged and says so in
the run tag, in `rerank_info.json` next to the run and in the MLflow run, so its numbers can never
be mistaken for a reranker's. The RankVideo reranker plugs in here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ..data.trec import read_trec_run, write_trec_run
from ..tracking import tracked_run
from ..utils.io import write_json

log = logging.getLogger(__name__)

PASSTHROUGH_NOTE = "PASSTHROUGH: no reranker configured; this run is the first-stage ranking, unchanged"


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    name = cfg.rerank.name
    if name != "passthrough":
        raise ValueError(f"rerank={name!r}: unknown reranker (available: passthrough)")
    first = read_trec_run(cfg.paths.first_stage_run)
    out = Path(cfg.paths.reranked_run)
    info_path = Path(cfg.paths.rerank_dir) / "rerank_info.json"
    with tracked_run(cfg, "rerank", source=source, pipeline_cfg=pipeline_cfg, inputs=[str(cfg.paths.first_stage_run)]) as tr:
        log.warning(PASSTHROUGH_NOTE)
        write_trec_run(out, first, tag="passthrough")
        info = {"reranker": "passthrough", "note": PASSTHROUGH_NOTE, "rerank_depth": int(cfg.rerank.depth),
                "num_queries": len(first), "pairs_scored": 0}
        write_json(info_path, info)
        tr.set_tags({"rerank.passthrough": "true", "mlflow.note.content": PASSTHROUGH_NOTE})
        tr.log_metrics({"pairs_scored": 0})
        tr.log_artifact(out, "run")
        tr.log_artifact(info_path, "run")
    return info
