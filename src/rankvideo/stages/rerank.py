"""Stage `rerank`: rescore the head of the first-stage list, keep the tail untouched.

- `rerank=rankvideo`: the trained RankVideo reranker (stage 2's model by default; point
  `rerank.checkpoint` at stage 1's model, or at any `save_pretrained` folder, to score with it).
  Scores s = logit(yes) - logit(no) for the top `rerank.depth` candidates of every query of
  `rerank.splits`, grouped by video (one decode and one vision pass per video), resumable.
- `rerank=passthrough`: writes the first-stage order unchanged and says so in the run tag, in
  `rerank_info.json` and in the MLflow run, so its numbers are never mistaken for a reranker's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from ..data.benchmark import Benchmark
from ..data.clips import ClipStore, clip_options, clip_settings
from ..data.trec import read_trec_run, write_trec_run
from ..models.prompts import get_preset
from ..tracking import StageRun, tracked_run
from ..utils.io import tree_fingerprint, write_json

log = logging.getLogger(__name__)

PASSTHROUGH_NOTE = "PASSTHROUGH: no reranker configured; this run is the first-stage ranking, unchanged"


def run_stage1_only(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    """Stage `rerank_stage1`: the same reranking with stage 1's model (perception SFT only, no
    reranking loss), into `paths.rerank_stage1_dir`: the paper's "stage 1 only" row."""
    out_dir = Path(cfg.paths.rerank_stage1_dir)
    if cfg.rerank.name != "rankvideo":
        note = f"rerank={cfg.rerank.name}: no stage-1 model to rerank with; no run written"
        log.warning(note)
        write_json(out_dir / "rerank_info.json", {"reranker": cfg.rerank.name, "note": note})
        return {}
    return _rankvideo(cfg, source, pipeline_cfg, run_name="rerank_stage1", checkpoint=Path(cfg.paths.stage1_dir) / "model",
                      rerank_dir=out_dir, out_run=out_dir / "run.trec")


def run_zeroshot(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    """Stage `rerank_zeroshot`: the same reranking with the backbone stage 1 starts from (the
    pre-trained tiny backbone, `paths.model_dir`), before any RankVideo training: the paper's
    zero-shot Qwen3-VL row. Into `paths.rerank_zeroshot_dir`."""
    out_dir = Path(cfg.paths.rerank_zeroshot_dir)
    if cfg.rerank.name != "rankvideo" or not cfg.model.build:
        what = f"rerank={cfg.rerank.name}" if cfg.rerank.name != "rankvideo" else f"model={cfg.model.name} (a hub backbone)"
        note = f"{what}: no zero-shot run written (score the hub model with rerank.checkpoint=<its folder>)"
        log.warning(note)
        write_json(out_dir / "rerank_info.json", {"reranker": cfg.rerank.name, "note": note})
        return {}
    return _rankvideo(cfg, source, pipeline_cfg, run_name="rerank_zeroshot", checkpoint=Path(cfg.paths.model_dir),
                      rerank_dir=out_dir, out_run=out_dir / "run.trec")


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    name = cfg.rerank.name
    if name == "passthrough":
        return _passthrough(cfg, source, pipeline_cfg)
    if name == "rankvideo":
        return _rankvideo(cfg, source, pipeline_cfg)
    raise ValueError(f"rerank={name!r}: unknown reranker (rankvideo | passthrough)")


def _passthrough(cfg: DictConfig, source: str, pipeline_cfg) -> dict:
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


def predict_trainer(t: DictConfig, root: Path):
    """A Lightning trainer for sharded scoring from the `trainer` config: the same devices and
    nodes, data parallel (`ddp` also under `trainer=fsdp`: each rank holds a full copy for
    inference), no logger, no checkpoints, our own progress bar."""
    import lightning as L

    strategy = "ddp" if str(t.strategy) in ("ddp", "fsdp") else str(t.strategy)
    return L.Trainer(accelerator=t.accelerator, devices=t.devices, num_nodes=int(t.get("num_nodes", 1)), strategy=strategy,
                     precision=t.precision, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, use_distributed_sampler=False, default_root_dir=str(root))


def _rankvideo(cfg: DictConfig, source: str, pipeline_cfg, *, run_name: str = "rerank", checkpoint: Path | None = None,
               rerank_dir: Path | None = None, out_run: Path | None = None) -> dict:
    ckpt = Path(checkpoint) if checkpoint is not None else Path(str(cfg.rerank.checkpoint))
    inputs = [str(cfg.paths.benchmark), str(cfg.paths.first_stage_run), str(ckpt)]
    with tracked_run(cfg, run_name, source=source, pipeline_cfg=pipeline_cfg, inputs=inputs) as tr:
        return rerank_with_model(cfg, ckpt, tr, splits=list(cfg.rerank.splits),
                                 rerank_dir=Path(rerank_dir) if rerank_dir is not None else Path(cfg.paths.rerank_dir),
                                 out_run=Path(out_run) if out_run is not None else Path(cfg.paths.reranked_run))


def rerank_with_model(cfg: DictConfig, ckpt: Path, tr: StageRun, *, splits: list[str], rerank_dir: Path,
                      out_run: Path, metric_prefix: str = "") -> dict:
    """Rerank the first-stage top `rerank.depth` of `splits` with the model saved at `ckpt` and
    write the TREC run to `out_run` (progress under `rerank_dir`, resumable); logs into `tr`."""
    from ..models.grouped import score_queries_for_video
    from ..models.rerank import VideoScoringRun, merge_head_and_tail, pair_key, read_progress, rerank_plan
    from ..modules.peft_setup import load_trained
    from ..modules.predict import RerankPredictModule

    r = cfg.rerank
    bench = Benchmark(cfg.paths.benchmark)
    first = read_trec_run(cfg.paths.first_stage_run)
    queries = {q.qid: q.text for s in splits for q in bench.queries(s)}
    base = str(cfg.paths.model_dir) if cfg.model.build else str(cfg.model.path)
    options = clip_options(cfg.model)
    clips = ClipStore(bench, fps=float(r.fps), max_frames=int(r.max_frames), **options)
    plan = rerank_plan(first, queries, int(r.depth))
    # The run-level key: what decides every score (the model's weights and the scoring settings).
    # Each pair adds its own key (the query text and the video file), so a changed query or video,
    # or a pair new to the first-stage heads, is scored while unchanged pairs are reused.
    prompt = get_preset(str(cfg.prompt.name)).name
    fingerprint = hashlib.sha256(json.dumps({"model": tree_fingerprint(ckpt), "fps": float(r.fps),
                                             "max_frames": int(r.max_frames), "prompt": prompt,
                                             **clip_settings(**options)}).encode()).hexdigest()[:16]
    docs = {d.doc_id: d for d in bench.corpus()}

    def video_id(doc: str) -> str:
        if doc not in docs:
            return doc
        path = bench.video_path(docs[doc])
        return f"{doc}:{path.stat().st_size if path.exists() else -1}"

    video_ids = {d: video_id(d) for d in plan}

    def key(doc: str, qid: str) -> str:
        return pair_key(queries[qid], video_ids[doc])

    def load():
        return load_trained(str(ckpt), base=base, dtype=cfg.model.dtype, trust_remote_code=bool(cfg.model.trust_remote_code))

    def score(model, processor, doc: str, texts: list[str], clip) -> list[float]:
        return score_queries_for_video(model, processor, clip, texts, batch_size=int(r.batch_size), prompt=prompt)

    def make_run(score_video, rank: int, world: int) -> VideoScoringRun:
        return VideoScoringRun(plan, queries, score_video, progress_file=rerank_dir / "progress.jsonl",
                               fingerprint=fingerprint, rank=rank, world=world, key=key)

    module = RerankPredictModule(load, make_run, score, fetch=clips.fetch, num_workers=int(r.num_workers))
    trainer = predict_trainer(cfg.trainer, rerank_dir)
    trainer.predict(module, return_predictions=False)
    module.close_run()
    stats = dict(module.run.stats)
    if trainer.world_size > 1:
        trainer.strategy.barrier()  # every rank's progress file is complete
        if trainer.global_rank != 0:
            return {}
    skipped: dict[str, str] = {}
    done = read_progress(rerank_dir / "progress.jsonl", fingerprint, skipped)
    scores = module.run.scores_by_query(done)
    module.run.write_journal(done, skipped)
    if trainer.world_size > 1:  # the whole run's counts, from every rank's progress file
        stats.update(videos_resumed=None, pairs_resumed=None, pairs_rescored=None, videos_skipped=len(skipped),
                     skipped=skipped, world_size=trainer.world_size)
    # Every head pair should now have a score; one without (a skipped video) keeps its first-stage
    # place after the scored ones, and is named here.
    unscored = sorted((q, d) for d, qids in plan.items() for q in qids if d not in scores.get(q, {}))
    if unscored:
        log.warning("%d head pairs have no score and keep their first-stage order after the scored ones: %s%s",
                    len(unscored), ", ".join(f"{q}/{d}" for q, d in unscored[:10]), " ..." if len(unscored) > 10 else "")
    run_out = merge_head_and_tail({q: first.get(q, {}) for q in queries}, scores, int(r.depth))
    write_trec_run(out_run, run_out, tag=f"rankvideo_{ckpt.parent.name if ckpt.name == 'model' else ckpt.name}")
    # Timings (seconds, pairs/s), resume counts and the number of ranks go to MLflow only: the
    # output folder must be a function of its inputs.
    timing = ("seconds", "pairs_per_s", "videos_resumed", "pairs_scored", "pairs_resumed", "pairs_rescored", "world_size")
    info = {"reranker": "rankvideo", "checkpoint": str(ckpt), "prompt": prompt, "rerank_depth": int(r.depth),
            "num_queries": len(queries), "num_pairs": sum(len(v) for v in plan.values()),
            **{k: v for k, v in stats.items() if k != "skipped" and k not in timing},
            "pairs_unscored": len(unscored), "skipped_videos": stats["skipped"]}
    write_json(rerank_dir / "rerank_info.json", info)
    info = {**info, **{k: stats[k] for k in timing if k in stats}}
    tr.log_metrics({metric_prefix + k: v for k, v in stats.items() if isinstance(v, (int, float)) and v is not None})
    tr.log_artifact(out_run, "run")
    tr.log_artifact(rerank_dir / "rerank_info.json", "run")
    log.info("reranked %d queries: %d pairs scored (%.1f pairs/s on rank 0; %s of them rescored), %s resumed, %d videos "
             "skipped", len(queries), stats["pairs_scored"], stats["pairs_per_s"] or 0, stats.get("pairs_rescored"),
             stats.get("pairs_resumed"), stats["videos_skipped"])
    return info
