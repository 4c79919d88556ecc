"""Stages `stage1` (perception SFT) and `stage2` (reranking) of the RankVideo curriculum.

Each stage trains with Lightning, logs to its own MLflow run (per-step loss terms; val nDCG@10 per
epoch in stage 2), keeps Lightning checkpoints (adapter-only under LoRA) and exports the trained
model with `save_pretrained` to `<stage dir>/model`, which the next stage (or the reranker) loads.
An interrupted stage resumes from its last checkpoint, in the same MLflow run, when its config is
unchanged (a fingerprint of the resolved config is stored next to the checkpoints).

`ensure_stage1` is how `python src/train.py` jobs get their stage-1 model: a finished stage 1 with
the same key (its config, the benchmark and the base model) is reused from the pipeline's folder
or from the stage-1 cache; otherwise it is trained once into the cache, under a file lock, so the
jobs of a sweep share it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from ..data.benchmark import Benchmark
from ..data.clips import ClipStore, clip_options
from ..modules.datamodules import Stage1DataModule, Stage2DataModule
from ..data.samplers import GroupSampler, GroupSpec, caption_targets
from ..data.trec import rank_order, read_trec_run
from ..models.tiny import load_processor
from ..modules import PerceptionSFTModule, RerankingModule
from ..tracking import StageRun, run_context, tracked_run
from ..tracking.lightning_logger import StageRunLogger
from ..utils.io import resumable_checkpoint, tree_fingerprint

log = logging.getLogger(__name__)


def base_model_path(cfg: DictConfig) -> str:
    """The backbone to start from: the built tiny model, or the hub id / folder of `model.path`."""
    if not cfg.model.build:
        return str(cfg.model.path)
    path = Path(cfg.paths.model_dir)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"model={cfg.model.name} is built by the build_model stage, and {path} holds no model: "
                                "run `dvc repro build_model` or `python src/build_model.py` first")
    return str(path)


def stage_model_dir(stage_dir: str) -> Path:
    return Path(stage_dir) / "model"


def _fingerprint(cfg: DictConfig, keys: tuple[str, ...]) -> str:
    def plain(v):
        return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v

    blob = {k: plain(OmegaConf.select(cfg, k)) for k in keys}
    for k in ("curriculum.stage1", "curriculum.stage2"):  # workers change the speed, not the batches
        if isinstance(blob.get(k), dict):
            blob[k].pop("num_workers", None)
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


STAGE1_CONFIG = ("seed", "model", "peft", "trainer", "curriculum.fps", "curriculum.stage1", "data.positive_min_grade")


def stage1_key(cfg: DictConfig) -> str:
    """What identifies a stage-1 model: its config, the benchmark it trains on and the base model it
    starts from (content hashes; files over 16 MiB count by name and size)."""
    Benchmark(cfg.paths.benchmark)  # says what to run when there is none
    data = {"benchmark": tree_fingerprint(cfg.paths.benchmark, big=16 * 2**20),
            "base": tree_fingerprint(base_model_path(cfg), big=16 * 2**20) if cfg.model.build else str(cfg.model.path)}
    return hashlib.sha256(f"{_fingerprint(cfg, STAGE1_CONFIG)}\n{json.dumps(data, sort_keys=True)}".encode()).hexdigest()[:16]


def finished_stage1(folder: Path, key: str) -> bool:
    """A completed stage 1 (exported model) of exactly this key."""
    marker = Path(folder) / "fingerprint.txt"
    return marker.exists() and marker.read_text() == key and (stage_model_dir(str(folder)) / "config.json").exists()


def ensure_stage1(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> tuple[Path, dict]:
    """The stage-1 folder a training job starts from: a finished stage 1 with this job's key, from
    `paths.stage1_search` (the pipeline's folder) or `paths.stage1_cache/<key>`; trained into the
    cache when there is none. Returns (folder, metrics of the training or {"reused": folder})."""
    from filelock import FileLock

    key = stage1_key(cfg)
    for folder in [*(cfg.paths.get("stage1_search") or []), Path(cfg.paths.stage1_cache) / key]:
        if finished_stage1(Path(folder), key):
            log.info("stage 1: reusing %s (key %s)", folder, key)
            return Path(folder), {"reused": str(folder), "key": key}
    cache = Path(cfg.paths.stage1_cache)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / key
    with FileLock(str(cache / f"{key}.lock")):
        if finished_stage1(target, key):  # another job of the sweep trained it while we waited
            return target, {"reused": str(target), "key": key}
        from omegaconf import open_dict

        job = cfg.copy()
        with open_dict(job):
            job.paths.stage1_dir = str(target)
        log.info("stage 1: no finished stage 1 with key %s; training it into %s", key, target)
        with run_context(name_suffix=f"key {key}"):  # shared by every job with this key
            metrics = run_stage1(job, source=source, pipeline_cfg=pipeline_cfg)
    return target, {**metrics, "key": key}


def _prepare_dir(out: Path, fingerprint: str) -> str | None:
    """Keep an interrupted run of the same config (returns its checkpoint to resume from);
    clear anything else."""
    marker = out / "fingerprint.txt"
    if out.exists() and marker.exists() and marker.read_text() == fingerprint and not (out / "model").exists():
        last = resumable_checkpoint(out / "checkpoints")
        if last:
            return last
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    marker.write_text(fingerprint)
    return None


def accumulate_grad_batches(stage_cfg: DictConfig) -> int:
    """Batches whose gradients add up to one optimizer step (`curriculum.stageN.accumulate_grad_batches`;
    1 where the key is left out, as in the tiny and paper curricula, so their fingerprints stay as
    they were). The official code trains stage 2 on one query group per forward, 8 accumulated."""
    return int(stage_cfg.get("accumulate_grad_batches", 1))


def loader_workers(stage_cfg: DictConfig) -> int:
    """DataLoader workers decoding and preprocessing the next training batches beside the step
    (`curriculum.stageN.num_workers`; 0, in the main process, where the key is left out). Left out
    of the stage fingerprints: the batches are the same either way."""
    return int(stage_cfg.get("num_workers", 0))


def _trainer(cfg: DictConfig, stage_cfg: DictConfig, out: Path, logger, extra_callbacks=(), **kwargs) -> L.Trainer:
    t = cfg.trainer
    strategy = t.strategy
    if t.strategy == "fsdp":
        from ..modules.strategies import fsdp_strategy

        strategy = fsdp_strategy(t)
    # save_top_k=1: with 0, Lightning 2.6 never writes last.ckpt (it saves "last" only after a top-k save).
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, save_top_k=1, every_n_epochs=1,
                           save_on_train_epoch_end=True)
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=int(t.get("num_nodes", 1)), strategy=strategy,
        precision=t.precision, deterministic=bool(t.deterministic), gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=int(t.log_every_n_steps), num_sanity_val_steps=int(t.num_sanity_val_steps),
        max_epochs=int(stage_cfg.epochs), accumulate_grad_batches=accumulate_grad_batches(stage_cfg),
        logger=logger, callbacks=[ckpt, *extra_callbacks],
        default_root_dir=str(out), enable_model_summary=False, **kwargs,
    )


def _common(cfg: DictConfig, stage_cfg: DictConfig) -> dict:
    return dict(dtype=cfg.model.dtype, trust_remote_code=bool(cfg.model.trust_remote_code),
                peft=OmegaConf.to_container(cfg.peft, resolve=True), lr=float(stage_cfg.lr),
                weight_decay=float(stage_cfg.weight_decay), warmup_ratio=float(stage_cfg.warmup_ratio),
                freeze_vision=bool(stage_cfg.get("freeze_vision", False)))


def run_stage1(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    L.seed_everything(int(cfg.seed), workers=True)
    s1 = cfg.curriculum.stage1
    out = Path(cfg.paths.stage1_dir)
    resume = _prepare_dir(out, stage1_key(cfg))
    bench = Benchmark(cfg.paths.benchmark)
    base = base_model_path(cfg)
    processor = load_processor(base, trust_remote_code=bool(cfg.model.trust_remote_code))
    captions = {d.doc_id: d.caption for d in bench.corpus()}
    grade = int(cfg.data.positive_min_grade)
    examples = caption_targets(bench.queries("train"), bench.qrels("train"), captions, positive_min_grade=grade)
    # Held-out videos for the perception check: val queries' positives that stage 1 does not train on.
    trained = {d for d, _ in examples}
    val_examples = [(d, c) for d, c in caption_targets(bench.queries("val"), bench.qrels("val"), captions, positive_min_grade=grade)
                    if d not in trained]
    clips = ClipStore(bench, fps=float(cfg.curriculum.fps), max_frames=int(s1.max_frames), **clip_options(cfg.model))
    dm = Stage1DataModule(examples, clips, processor, batch_size=int(s1.batch_size), seed=int(cfg.seed),
                          val_examples=val_examples, num_workers=loader_workers(s1))
    module = PerceptionSFTModule(model_path=base, **_common(cfg, s1))
    with tracked_run(cfg, "stage1", source=source, pipeline_cfg=pipeline_cfg, inputs=[str(cfg.paths.benchmark), base],
                     resume_file=out / "mlflow_run_id") as tr:
        trainer = _trainer(cfg, s1, out, StageRunLogger(tr), reload_dataloaders_every_n_epochs=1)
        trainer.fit(module, dm, ckpt_path=resume)
        module.export(stage_model_dir(out), processor)
        cm = trainer.callback_metrics
        metrics = {"examples": len(examples), "val_examples": len(val_examples), "steps": trainer.global_step,
                   "final_loss_caption": float(cm.get("train/loss_caption", float("nan"))),
                   "val_loss_caption": float(cm.get("val/loss_caption", float("nan"))),
                   "val_video_gain": float(cm.get("val/video_gain", float("nan")))}
        tr.log_metrics({f"stage1/{k}": v for k, v in metrics.items()})
    return metrics


def run_stage2(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None, *,
               callbacks: Sequence[L.Callback] = (), after_fit: Callable[[StageRun], dict] | None = None) -> dict:
    """Stage 2. `callbacks` join the Lightning trainer (an Optuna pruning callback, say);
    `after_fit(run)` runs inside the stage's MLflow run after the export (a sweep job's reranking
    and evaluation) and its result is returned under "after_fit"."""
    L.seed_everything(int(cfg.seed), workers=True)
    s2 = cfg.curriculum.stage2
    out = Path(cfg.paths.stage2_dir)
    resume = _prepare_dir(out, _fingerprint(cfg, ("seed", "model", "peft", "trainer", "curriculum.fps", "curriculum.stage2", "loss",
                                                  "teacher", "data.positive_min_grade")))
    bench = Benchmark(cfg.paths.benchmark)
    first = read_trec_run(cfg.paths.first_stage_run)
    init = stage_model_dir(cfg.paths.stage1_dir)
    if not init.is_dir():
        raise FileNotFoundError(f"stage 2 starts from stage 1's model, {init} does not exist: run stage 1 first "
                                "(`dvc repro stage1` or `python src/train.py`)")
    lora = cfg.peft.name != "none"
    processor = load_processor(str(init), trust_remote_code=bool(cfg.model.trust_remote_code))
    teacher, allowed = _teacher_labels(cfg)
    sampler = GroupSampler(bench.queries("train"), bench.qrels("train"), first, group_spec(cfg), seed=int(cfg.seed),
                           teacher=teacher, allowed=allowed)
    val_queries = bench.queries("val")
    val_pairs = sorted(((q.qid, d, q.text) for q in val_queries for d in rank_order(first.get(q.qid, {}))[: int(s2.val_depth)]),
                       key=lambda p: (p[1], p[0]))  # by video: consecutive pairs share decoded clips
    clips = ClipStore(bench, fps=float(cfg.curriculum.fps), max_frames=int(s2.max_frames), **clip_options(cfg.model))
    dm = Stage2DataModule(sampler, clips, processor, batch_size=int(s2.batch_size), val_pairs=val_pairs,
                          prompt=str(cfg.prompt.name), num_workers=loader_workers(s2))
    module = RerankingModule(model_path=base_model_path(cfg) if lora else str(init), init_adapter=str(init) if lora else None,
                             loss={k: v for k, v in OmegaConf.to_container(cfg.loss, resolve=True).items() if k != "name"},
                             val_qrels=bench.qrels("val"), prompt=str(cfg.prompt.name),
                             **_common(cfg, s2))
    with tracked_run(cfg, "stage2", source=source, pipeline_cfg=pipeline_cfg,
                     inputs=[str(cfg.paths.benchmark), str(cfg.paths.first_stage_run), str(init),
                             *([str(cfg.paths.teacher_labels)] if cfg.paths.get("teacher_labels") else [])],
                     resume_file=out / "mlflow_run_id") as tr:
        trainer = _trainer(cfg, s2, out, StageRunLogger(tr), extra_callbacks=callbacks, reload_dataloaders_every_n_epochs=1,
                           check_val_every_n_epoch=int(s2.get("val_every_n_epochs", 1)))
        trainer.fit(module, dm, ckpt_path=resume)
        module.export(stage_model_dir(out), processor)
        metrics = {"groups": len(sampler), "steps": trainer.global_step,
                   "val_ndcg@10": float(trainer.callback_metrics.get("val/ndcg@10", float("nan")))}
        tr.log_metrics({f"stage2/{k}": v for k, v in metrics.items()})
        metrics["mlflow_run_id"] = tr.run_id
        if after_fit is not None:
            metrics["after_fit"] = after_fit(tr)
    return metrics


def group_spec(cfg: DictConfig) -> GroupSpec:
    """Stage 2's query groups as configured: positives and negatives by grade as the teacher stage
    labelled them (`data.positive_min_grade`, `teacher.negative_max_grade`), K negatives from the
    first stage's top `curriculum.stage2.pool_depth`."""
    s2 = cfg.curriculum.stage2
    return GroupSpec(num_negatives=int(s2.num_negatives), pool_depth=int(s2.pool_depth),
                     positive_min_grade=int(cfg.data.positive_min_grade),
                     negative_max_grade=int(OmegaConf.select(cfg, "teacher.negative_max_grade", default=0)),
                     negatives_with_replacement=bool(s2.get("negatives_with_replacement", False)),
                     teacher_hardest=int(s2.get("teacher_hardest", 0)))


def _teacher_labels(cfg: DictConfig) -> tuple[dict[tuple[str, str], float], dict[str, set[str]] | None]:
    """Teacher p_yes per (qid, doc_id) and the mined pairs per query, from the teacher stage's
    labels.jsonl (official training-record format); none when there is no teacher output."""
    path = cfg.paths.get("teacher_labels")
    if not path or not Path(path).exists():
        log.warning("no teacher labels at %s: stage 2 trains without distillation targets or mining", path)
        return {}, None
    p_yes, allowed = {}, {}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            row = json.loads(line)
            p_yes[(row["query_id"], row["doc_id"])] = float(row["teacher_p_yes"])
            allowed.setdefault(row["query_id"], set()).add(row["doc_id"])
    return p_yes, allowed
