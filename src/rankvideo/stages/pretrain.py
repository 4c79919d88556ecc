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
import math
import os
import platform
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from ..data.synthetic.build import VideoSpec
from ..data.synthetic.pretraining import PretrainCorpusConfig, build_corpus, corpus_fingerprint, tokenizer_texts
from ..models.scoring import yes_no_token_ids
from ..models.tiny import build_tiny_qwen3_vl, grow_language_model, load_processor, state_dict_sha256, widen_vision_tower
from ..modules.pretraining import GROWTH_KEYS, PretrainDataModule, PretrainModule, ProgressLog, continued_rounds, parse_rounds, parse_schedule
from ..tracking import tracked_run
from ..tracking.lightning_logger import StageRunLogger
from ..utils.io import atomic_dir, file_sha256, resumable_checkpoint, write_json

log = logging.getLogger(__name__)

INFO = "pretrain_info.json"
SUMS = "SHA256SUMS"
# A round's growth key (GROWTH_KEYS) -> what resizes the weights, the round's folder for them, the log line.
RESIZES = {
    "grow_layers": (grow_language_model, "grown", "%d decoder layers appended to the language model"),
    "widen_vision": (widen_vision_tower, "widened", "vision tower widened %dx"),
}


def corpus_config(node: DictConfig) -> PretrainCorpusConfig:
    d = OmegaConf.to_container(node, resolve=True)
    d["video"] = VideoSpec(**d.get("video", {}))
    return PretrainCorpusConfig(**d)



def corpus_dir(cfg: DictConfig) -> Path:
    """Where the configured pre-training corpus is built: one folder per corpus config."""
    return Path(cfg.paths.pretrain_work) / f"corpus-{corpus_fingerprint(corpus_config(cfg.pretrain.corpus))}"


def folder_sums(folder: Path) -> dict[str, str]:
    """sha256 of every file of a model folder except SHA256SUMS itself, by relative name."""
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != SUMS}


def _fingerprint(cfg: DictConfig, upto: int = 0) -> str:
    """The run folder of round `upto` (0: the first): what decides its weights, that is the
    settings of every round up to it. The first round's is that of a config without rounds."""
    blob = {k: OmegaConf.to_container(OmegaConf.select(cfg, k), resolve=True) for k in ("pretrain", "model.arch")}
    blob["pretrain"].pop("num_workers", None)
    blob["pretrain"].pop("reuse", None)
    blob["pretrain"]["corpus"].pop("num_workers", None)
    # An extra round hashes as the configured round at its position would, so an experiment's
    # `extra_rounds` continue the configured rounds' folders (and the shipped export).
    continued = [r for _, r in continued_rounds(blob["pretrain"])]
    blob["pretrain"].pop("continued", None)
    blob["pretrain"].pop("extra_rounds", None)
    if upto:
        blob["pretrain"]["continued"] = continued[:upto]
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
    plan = parse_rounds(OmegaConf.to_container(p, resolve=True))
    fps = [_fingerprint(cfg, k) for k in range(len(plan))]
    t0 = time.perf_counter()
    corpus = build_corpus(corpus_config(p.corpus), corpus_dir(cfg))
    log.info("pre-training corpus: %d videos (%d held out) in %s", len(corpus.videos), len(corpus.heldout_indices), corpus.root)

    init = work / fps[0] / "init"
    if not (init / "config.json").exists():
        arch = dict(OmegaConf.to_container(cfg.model.arch, resolve=True))
        seed = int(arch.pop("seed", 0))
        texts = tokenizer_texts([corpus.videos[i] for i in corpus.train_indices], seed=int(p.corpus.seed))
        build_tiny_qwen3_vl(init, corpus=texts, seed=seed, overwrite=True, **arch)
    processor = load_processor(init)

    with tracked_run(cfg, "pretrain", source=source, pipeline_cfg=pipeline_cfg,
                     resume_file=work / fps[-1] / "mlflow_run_id") as tr:
        weights, steps, done = init, 0, []
        # The last round whose weights exist (trained here, or an export with its fingerprint): the
        # rounds before it are not needed (a fresh clone continues the shipped last round directly).
        start = 0
        for k in reversed(range(len(plan))):
            earlier = _adopt_export(p.get("reuse") or [], fps[k], work / fps[k] / "model")
            if earlier is not None:
                local = _local_records(work, fps, k)
                start, done = k, (local if local is not None else earlier)
                steps = sum(int(r["steps"]) for r in done)
                break
        for k, r in enumerate(plan):
            if k < start:
                continue
            run_dir = work / fps[k]
            if len(plan) > 1:
                log.info("pre-training round %d of %d (%s)", k + 1, len(plan), run_dir)
            if k:  # the first round keeps the seeding of a run without rounds
                L.seed_everything(int(r["seed"]), workers=True)
            weights, record = _train_round(cfg, r, corpus, processor, weights, run_dir, tr, steps)
            steps += record["steps"]
            done.append(_round_entry(k, fps[k], record))
        last = done[-1]
        seconds = round(time.perf_counter() - t0, 1)
        info = {
            "stage": "rankvideo.stages.pretrain", "fingerprint": fps[-1], "steps": steps,
            "epochs": last["epochs"], "seconds": seconds, "device": _device(), "threads": int(p.threads),
            "torch": torch.__version__, "heldout": last["heldout"],
            "corpus": {k: corpus.manifest[k] for k in ("config", "num_videos", "frames_sha256", "fingerprint")},
            "config": {"pretrain": OmegaConf.to_container(p, resolve=True),
                       "model.arch": OmegaConf.to_container(cfg.model.arch, resolve=True)},
        }
        if len(done) > 1:
            # Per round: steps, time of the process that trained it, held-out accuracy after it.
            info["rounds"] = done
        with atomic_dir(out) as tmp:
            tmp.mkdir()
            for f in sorted(Path(weights).iterdir()):
                if f.is_file() and f.name != ROUND_INFO:
                    shutil.copy2(f, tmp / f.name)
            # The builder's record (architecture, tokenizer), now describing the trained weights.
            build = json.loads((init / "build_info.json").read_text())
            build["initial_state_dict_sha256"] = build["state_dict_sha256"]
            build["state_dict_sha256"] = last["state_dict_sha256"]
            build["pretrained_by"] = "rankvideo.stages.pretrain"
            grown = sum(int(r.get("grow_layers", 0)) for r in plan)
            widened = math.prod(int(r.get("widen_vision", 1)) for r in plan)
            if grown or widened > 1:
                # `args` stay what the first round was built with (model.arch); rounds changed the sizes.
                build["config"] = json.loads((tmp / "config.json").read_text())
            if grown:
                build["grown_layers"] = grown
            if widened > 1:
                build["vision_widened"] = widened
            write_json(tmp / "build_info.json", build)
            write_json(tmp / INFO, info)
            sums = folder_sums(tmp)
            (tmp / SUMS).write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
        tr.log_metrics({"pretrain/seconds": seconds, "pretrain/steps": steps,
                        **{f"pretrain/heldout/{k}": v for k, v in last["heldout"].get("accuracy", {}).items()}})
        tr.set_tags({"pretrain.device": info["device"], "pretrain.threads": info["threads"],
                     "pretrain.rounds": len(plan)})
        tr.log_artifact(out / INFO, "pretrain")
    log.info("pre-trained backbone -> %s (%d steps, %.0f s); held-out accuracy %s", out, steps, seconds,
             last["heldout"].get("accuracy", {}).get("all"))
    return {"steps": steps, "seconds": seconds, "heldout": last["heldout"], "sha256": sums, "rounds": done}


ROUND_INFO = "round_info.json"


def _adopt_export(candidates, fingerprint: str, model_dir: Path) -> list[dict] | None:
    """A round whose weights were exported before (the shipped backbone: its pretrain_info.json has
    the round's fingerprint) is taken from that export, its files checked against its SHA256SUMS,
    instead of being trained again. Returns None when the round's weights are neither in
    `model_dir` nor in an export, else the records of the rounds before it that the export lists
    (empty when it lists none or the weights were trained here)."""
    if (model_dir / ROUND_INFO).exists():
        return json.loads((model_dir / ROUND_INFO).read_text()).get("earlier_rounds", [])
    for folder in map(Path, candidates):
        info_file = folder / INFO
        if not info_file.is_file():
            continue
        info = json.loads(info_file.read_text())
        if info.get("fingerprint") != fingerprint:
            continue
        listed = {}
        for n, line in enumerate((folder / SUMS).read_text().splitlines(), start=1):
            digest, _, name = line.partition("  ")
            if not name:
                raise ValueError(f"{folder / SUMS}:{n}: expected '<sha256>  <file>', got {line!r}")
            listed[name] = digest
        found = folder_sums(folder)
        if found != listed:
            bad = sorted(k for k in set(listed) | set(found) if listed.get(k) != found.get(k))
            raise ValueError(f"{folder}: files differ from its {SUMS} ({bad}); it cannot stand for round {fingerprint}")
        build = json.loads((folder / "build_info.json").read_text())
        earlier = [r for r in info.get("rounds", []) if r.get("fingerprint") != fingerprint]
        last = next((r for r in info.get("rounds", []) if r.get("fingerprint") == fingerprint), info)
        record = {"steps": last["steps"], "epochs": last["epochs"], "seconds": last["seconds"],
                  "state_dict_sha256": build["state_dict_sha256"], "heldout": info["heldout"], "adopted_from": str(folder),
                  "earlier_rounds": earlier}
        with atomic_dir(model_dir) as tmp:
            tmp.mkdir()
            for f in sorted(folder.iterdir()):
                if f.is_file() and f.name not in (INFO, SUMS):
                    shutil.copy2(f, tmp / f.name)
            write_json(tmp / ROUND_INFO, record)
        log.info("round %s: taken from the export in %s (same fingerprint), not trained again", fingerprint, folder)
        return earlier
    return None


def _local_records(work: Path, fps: list[str], k: int) -> list[dict] | None:
    """The records of rounds 1..k trained (or taken) here, or None if one of them is missing."""
    out = []
    for j in range(k):
        f = work / fps[j] / "model" / ROUND_INFO
        if not f.exists():
            return None
        out.append(_round_entry(j, fps[j], json.loads(f.read_text())))
    return out


def _round_entry(k: int, fingerprint: str, record: dict) -> dict:
    """Round k's entry in pretrain_info.json's `rounds`: its record without the rounds before it."""
    return {"round": k + 1, "fingerprint": fingerprint, **{key: v for key, v in record.items() if key != "earlier_rounds"}}


def _train_round(cfg: DictConfig, r: dict, corpus, processor, weights: Path, run_dir: Path, tr, step_offset: int):
    """One round: train from `weights` (resuming from the round's last checkpoint), answer the
    held-out questions, export the weights to `run_dir/model`. A round whose export exists is
    not run again. Returns the exported folder and the round's record."""
    p = cfg.pretrain
    model_dir = run_dir / "model"
    if (model_dir / ROUND_INFO).exists():
        log.info("round %s: done before, its weights are in %s", run_dir.name, model_dir)
        return model_dir, json.loads((model_dir / ROUND_INFO).read_text())
    t0 = time.perf_counter()
    # Size changes the round makes before it trains, each into its own folder of the round (kept, so
    # a resumed round does not redo it).
    for key, (resize, folder, what) in RESIZES.items():
        if int(r.get(key, GROWTH_KEYS[key])) != GROWTH_KEYS[key]:
            resized = run_dir / folder
            if not (resized / "config.json").exists():
                resize(weights, resized, int(r[key]), seed=int(r["seed"]))
                log.info("round %s: " + what + " -> %s", run_dir.name, int(r[key]), resized)
            weights = resized
    dm = PretrainDataModule(
        corpus, processor, batch_size=int(r["batch_size"]), steps_per_epoch=int(r["steps_per_epoch"]),
        epochs=int(r["epochs"]), schedule=parse_schedule(r["schedule"]), qtype_weights=r["qtypes"], seed=int(r["seed"]),
        heldout_per_video=OmegaConf.to_container(p.heldout_per_video, resolve=True),
        eval_batch_size=int(p.eval_batch_size), num_workers=int(p.num_workers),
    )
    module = PretrainModule(model_path=str(weights), yes_no_ids=yes_no_token_ids(processor), dtype=cfg.model.dtype,
                            lr=float(r["lr"]), weight_decay=float(r["weight_decay"]),
                            warmup_ratio=float(r["warmup_ratio"]), freeze_vision=float(r["vision_lr_scale"]) == 0,
                            vision_lr_scale=float(r["vision_lr_scale"]))
    ckpt_dir = run_dir / "checkpoints"
    resume = resumable_checkpoint(ckpt_dir)
    if resume:
        log.info("resuming pre-training from %s", resume)

    from lightning.pytorch.callbacks import ModelCheckpoint

    trainer = L.Trainer(
        accelerator="auto", devices=1, precision="32-true", deterministic=True, gradient_clip_val=1.0,
        max_epochs=int(r["epochs"]), logger=StageRunLogger(tr, step_offset=step_offset), log_every_n_steps=25,
        num_sanity_val_steps=0,
        # save_top_k=1: with 0, Lightning 2.6 never writes last.ckpt (it saves "last" only after a top-k save).
        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=1, every_n_epochs=1,
                                   save_on_train_epoch_end=True), ProgressLog()],
        default_root_dir=str(run_dir), enable_model_summary=False, fast_dev_run=bool(p.fast_dev_run),
        check_val_every_n_epoch=int(r["val_every_n_epochs"]),
        # Every epoch draws its own batches (the schedule moves on): the loaders are rebuilt.
        reload_dataloaders_every_n_epochs=1,
    )
    trainer.fit(module, dm, ckpt_path=resume)
    if not module.heldout:  # the last epoch had no validation (val_every_n_epochs), or a fast_dev_run
        trainer.validate(module, dm, verbose=False)
    record = {"steps": trainer.global_step, "epochs": trainer.current_epoch,
              "seconds": round(time.perf_counter() - t0, 1), "state_dict_sha256": state_dict_sha256(module.model),
              "heldout": module.heldout}
    with atomic_dir(model_dir) as tmp:
        module.export(tmp, processor)
        write_json(tmp / ROUND_INFO, record)
    return model_dir, record
