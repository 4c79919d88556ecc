"""Stage `pretrain`: pre-training of the tiny default backbone on the synthetic world.

Builds the pre-training corpus (`rankvideo.data.synthetic.pretraining`; never benchmark data), a
fresh tiny Qwen3-VL whose tokenizer is trained on the corpus's text (`model.arch`), trains it
with Lightning (`PretrainModule`: answers' next-token loss, prompt forms scheduled from short to
long), and writes the result to `paths.pretrained`: the model and processor (`save_pretrained`),
`pretrain_info.json` (held-out accuracies per prompt form and question type, steps, time, device,
thread count, corpus manifest) and `SHA256SUMS` (the sha256 of every file, which
`model.pretrained.sha256` must match when the pipeline loads the weights).

The output ships with the repository and the stage is frozen in dvc.yaml: `dvc repro` uses the
shipped weights. Rebuild them with `dvc repro -f -s pretrain` after unfreezing it (or
`python src/pretrain.py`, which writes into its Hydra run folder). Its scratch folder
(`paths.pretrain_work`: the rendered corpus, checkpoints) is reused, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from ..data.synthetic.build import VideoSpec
from ..data.synthetic.pretraining import PretrainCorpusConfig, build_corpus, corpus_fingerprint, tokenizer_texts
from ..models.scoring import yes_no_token_ids
from ..models.tiny import build_tiny_qwen3_vl, load_processor, state_dict_sha256
from ..modules.pretraining import PretrainDataModule, PretrainModule, ProgressLog, parse_schedule
from ..tracking import tracked_run
from ..tracking.lightning_logger import StageRunLogger
from ..utils.io import atomic_dir, file_sha256, resumable_checkpoint, write_json

log = logging.getLogger(__name__)

INFO = "pretrain_info.json"
SUMS = "SHA256SUMS"


def corpus_config(node: DictConfig) -> PretrainCorpusConfig:
    d = OmegaConf.to_container(node, resolve=True)
    d["video"] = VideoSpec(**d.get("video", {}))
    return PretrainCorpusConfig(**d)



def folder_sums(folder: Path) -> dict[str, str]:
    """sha256 of every file of a model folder except SHA256SUMS itself, by relative name."""
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != SUMS}


def _fingerprint(cfg: DictConfig) -> str:
    blob = {k: OmegaConf.to_container(OmegaConf.select(cfg, k), resolve=True) for k in ("pretrain", "model.arch")}
    blob["pretrain"].pop("num_workers", None)
    blob["pretrain"]["corpus"].pop("num_workers", None)
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _device() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run(cfg: DictConfig, source: str = "cli", pipeline_cfg: DictConfig | None = None) -> dict:
    p = cfg.pretrain
    torch.set_num_threads(int(p.threads))
    L.seed_everything(int(p.seed), workers=True)
    work = Path(cfg.paths.pretrain_work)
    out = Path(cfg.paths.pretrained)
    fp = _fingerprint(cfg)
    run_dir = work / fp
    t0 = time.perf_counter()
    ccfg = corpus_config(p.corpus)
    corpus = build_corpus(ccfg, work / f"corpus-{corpus_fingerprint(ccfg)}")
    log.info("pre-training corpus: %d videos (%d held out) in %s", len(corpus.videos), len(corpus.heldout_indices), corpus.root)

    init = run_dir / "init"
    if not (init / "config.json").exists():
        arch = dict(OmegaConf.to_container(cfg.model.arch, resolve=True))
        seed = int(arch.pop("seed", 0))
        texts = tokenizer_texts([corpus.videos[i] for i in corpus.train_indices], seed=int(p.corpus.seed))
        build_tiny_qwen3_vl(init, corpus=texts, seed=seed, overwrite=True, **arch)
    processor = load_processor(init)
    schedule = parse_schedule(OmegaConf.to_container(p.schedule, resolve=True))
    dm = PretrainDataModule(
        corpus, processor, batch_size=int(p.batch_size), steps_per_epoch=int(p.steps_per_epoch), epochs=int(p.epochs),
        schedule=schedule, qtype_weights=OmegaConf.to_container(p.qtypes, resolve=True), seed=int(p.seed),
        heldout_per_video=OmegaConf.to_container(p.heldout_per_video, resolve=True),
        eval_batch_size=int(p.eval_batch_size), num_workers=int(p.num_workers),
    )
    module = PretrainModule(model_path=str(init), yes_no_ids=yes_no_token_ids(processor), dtype=cfg.model.dtype,
                            lr=float(p.lr), weight_decay=float(p.weight_decay), warmup_ratio=float(p.warmup_ratio),
                            freeze_vision=float(p.vision_lr_scale) == 0, vision_lr_scale=float(p.vision_lr_scale))
    ckpt_dir = run_dir / "checkpoints"
    resume = resumable_checkpoint(ckpt_dir)
    if resume:
        log.info("resuming pre-training from %s", resume)

    from lightning.pytorch.callbacks import ModelCheckpoint

    with tracked_run(cfg, "pretrain", source=source, pipeline_cfg=pipeline_cfg, resume_file=run_dir / "mlflow_run_id") as tr:
        trainer = L.Trainer(
            accelerator="auto", devices=1, precision="32-true", deterministic=True, gradient_clip_val=1.0,
            max_epochs=int(p.epochs), logger=StageRunLogger(tr), log_every_n_steps=25, num_sanity_val_steps=0,
            # save_top_k=1: with 0, Lightning 2.6 never writes last.ckpt (it saves "last" only after a top-k save).
            callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=1, every_n_epochs=1,
                                       save_on_train_epoch_end=True), ProgressLog()],
            default_root_dir=str(run_dir), enable_model_summary=False, fast_dev_run=bool(p.fast_dev_run),
            check_val_every_n_epoch=int(p.val_every_n_epochs),
            # Every epoch draws its own batches (the schedule moves on): the loaders are rebuilt.
            reload_dataloaders_every_n_epochs=1,
        )
        trainer.fit(module, dm, ckpt_path=resume)
        if not module.heldout:  # the last epoch had no validation (val_every_n_epochs), or a fast_dev_run
            trainer.validate(module, dm, verbose=False)
        seconds = round(time.perf_counter() - t0, 1)
        info = {
            "stage": "rankvideo.stages.pretrain", "fingerprint": fp, "steps": trainer.global_step,
            "epochs": trainer.current_epoch, "seconds": seconds, "device": _device(), "threads": int(p.threads),
            "torch": torch.__version__, "heldout": module.heldout,
            "corpus": {k: corpus.manifest[k] for k in ("config", "num_videos", "frames_sha256", "fingerprint")},
            "config": {"pretrain": OmegaConf.to_container(p, resolve=True),
                       "model.arch": OmegaConf.to_container(cfg.model.arch, resolve=True)},
        }
        with atomic_dir(out) as tmp:
            module.export(tmp, processor)
            # The builder's record (architecture, tokenizer), now describing the trained weights.
            build = json.loads((init / "build_info.json").read_text())
            build["initial_state_dict_sha256"] = build["state_dict_sha256"]
            build["state_dict_sha256"] = state_dict_sha256(module.model)
            build["pretrained_by"] = "rankvideo.stages.pretrain"
            write_json(tmp / "build_info.json", build)
            write_json(tmp / INFO, info)
            sums = folder_sums(tmp)
            (tmp / SUMS).write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
        tr.log_metrics({"pretrain/seconds": seconds, "pretrain/steps": trainer.global_step,
                        **{f"pretrain/heldout/{k}": v for k, v in module.heldout.get("accuracy", {}).items()}})
        tr.set_tags({"pretrain.device": info["device"], "pretrain.threads": info["threads"]})
        tr.log_artifact(out / INFO, "pretrain")
    log.info("pre-trained backbone -> %s (%d steps, %.0f s); held-out accuracy %s", out, trainer.global_step, seconds,
             module.heldout.get("accuracy", {}).get("all"))
    return {"steps": trainer.global_step, "seconds": seconds, "heldout": module.heldout, "sha256": sums}
