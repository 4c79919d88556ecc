"""The two curriculum stages as LightningModules (paper section 4).

- `PerceptionSFTModule` (stage 1): token NLL of the teacher caption `<think>{caption}</think>`
  given the video; loss on the target tokens only (labels from `encode_caption_examples`).
- `RerankingModule` (stage 2): scores s = logit(yes) - logit(no) at the answer position for every
  pair of a batch of query groups, and trains `stage2_loss` (pairwise + distillation + pointwise,
  each term logged every step). Validation reranks the val queries' first-stage heads and logs
  `val/ndcg@10` once per epoch.

Both build the backbone in `configure_model()` (Lightning calls it under the strategy's context,
so FSDP can shard the model as it is created) and export it with `save_pretrained`: the full
model under `peft=none`, only the adapter under LoRA.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from ..eval import evaluate
from ..losses import Stage2LossConfig, stage2_loss_batch
from ..models.grouped import score_encoded_group
from ..models.prompts import get_preset
from ..models.scoring import score_batch
from ..models.tiny import load_backbone
from .peft_setup import apply_peft, quantization_config

log = logging.getLogger(__name__)


def is_vision_parameter(name: str) -> bool:
    """A parameter of the vision tower or its mergers (Qwen-VL names them under `visual`)."""
    return ".visual." in f".{name}"


def optimizer_groups(named_parameters, lr: float, vision_lr_scale: float = 1.0) -> list[dict]:
    """AdamW parameter groups of the trainable parameters: the language model (and everything else)
    at `lr`, then the vision tower, if any of it trains, at `lr * vision_lr_scale`."""
    named = [(n, p) for n, p in named_parameters if p.requires_grad]
    vision = [p for n, p in named if is_vision_parameter(n)]
    groups = [{"params": [p for n, p in named if not is_vision_parameter(n)], "lr": lr}]
    if vision:
        groups.append({"params": vision, "lr": lr * vision_lr_scale})
    return groups


class BackboneModule(L.LightningModule):
    def __init__(self, *, model_path: str, dtype: str | None = None, trust_remote_code: bool = False,
                 peft: dict | None = None, init_adapter: str | None = None, lr: float = 1e-4,
                 weight_decay: float = 0.0, warmup_ratio: float = 0.03, freeze_vision: bool = False,
                 vision_lr_scale: float = 1.0):
        super().__init__()
        self.freeze_vision = bool(freeze_vision)
        self.vision_lr_scale = float(vision_lr_scale)  # the vision tower's lr = lr * this (when trained)
        self.model_path, self.dtype_name, self.trust_remote_code = str(model_path), dtype, trust_remote_code
        self.peft_cfg = OmegaConf.create(peft or {"name": "none"})
        self.init_adapter = init_adapter
        self.lr, self.weight_decay, self.warmup_ratio = float(lr), float(weight_decay), float(warmup_ratio)
        self.model = None

    def configure_model(self) -> None:
        if self.model is not None:
            return
        quant = quantization_config(self.peft_cfg)
        model, _ = load_backbone(self.model_path, trust_remote_code=self.trust_remote_code, dtype=self.dtype_name,
                                 **({"quantization_config": quant} if quant else {}))
        model.train()  # from_pretrained returns eval mode
        self.model = apply_peft(model, self.peft_cfg, adapter=self.init_adapter)
        if self.freeze_vision:
            # The vision tower and its mergers keep their weights (LoRA leaves them untouched too).
            for name, p in self.model.named_parameters():
                if is_vision_parameter(name):
                    p.requires_grad_(False)
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        log.info("backbone %s: %d of %d parameters trainable (peft=%s)", self.model_path, trainable, total, self.peft_cfg.name)

    def configure_optimizers(self):
        from transformers import get_cosine_schedule_with_warmup

        # The vision tower (and its mergers) in its own group at lr * vision_lr_scale. Matched by
        # name: under FSDP with flattened parameters the names are gone and one group remains.
        groups = optimizer_groups(self.named_parameters(), self.lr, self.vision_lr_scale)
        opt = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = get_cosine_schedule_with_warmup(opt, int(self.warmup_ratio * total), total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _strategy(self):
        return self._trainer.strategy if self._trainer is not None else None

    def _fsdp_strategy(self):
        """Lightning's FSDPStrategy when training under it, else None (matched by name: importing
        it pulls in torch.distributed.fsdp)."""
        strategy = self._strategy()
        return strategy if strategy is not None and type(strategy).__name__ == "FSDPStrategy" else None

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # Under FSDP each rank holds a shard of every gradient: the norm must be computed across
        # shards by the root FSDP module (Lightning's FSDP precision plugin refuses to clip).
        strategy = self._fsdp_strategy()
        if gradient_clip_val and strategy is not None:
            if gradient_clip_algorithm not in (None, "norm"):
                raise ValueError(f"trainer=fsdp clips by norm only, not {gradient_clip_algorithm!r}")
            strategy.model.clip_grad_norm_(float(gradient_clip_val))
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Under LoRA only the adapter is trained: keep checkpoints adapter-only (the base weights
        # are the build_model output or the hub's, versioned elsewhere).
        if self.peft_cfg.name != "none":
            keep = {n for n, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.peft_cfg.name != "none":
            # Adapter-only checkpoint: fill in the base weights so strict loading succeeds.
            full = self.state_dict()
            full.update(checkpoint["state_dict"])
            checkpoint["state_dict"] = full

    def export(self, out_dir: str | Path, processor) -> None:
        """`save_pretrained` of the trained model (adapter only under LoRA) plus the processor.

        Every rank must call it (under FSDP the full weights are gathered from all shards); only
        global rank 0 writes."""
        strategy, fsdp = self._strategy(), self._fsdp_strategy()
        model = self._unsharded_copy(fsdp) if fsdp is not None else self.model
        if strategy is None or strategy.is_global_zero:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(out)
            processor.save_pretrained(out)
        if strategy is not None:
            strategy.barrier("export")

    def _unsharded_copy(self, strategy):
        """The trained weights gathered from FSDP shards into a fresh, unwrapped copy of the
        backbone on the CPU (rank 0; other ranks only take part in the gather and get None)."""
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        root = strategy.model
        with FSDP.state_dict_type(root, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
            full = root.state_dict()
        if not strategy.is_global_zero:
            return None
        strip = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
        state = {}
        for key, value in full.items():
            for s in strip:
                key = key.replace(s, "")
            if key.startswith("model."):
                state[key[len("model."):]] = value
        fresh, _ = load_backbone(self.model_path, trust_remote_code=self.trust_remote_code, dtype=self.dtype_name)
        fresh = apply_peft(fresh, self.peft_cfg, adapter=self.init_adapter)
        missing, unexpected = fresh.load_state_dict(state, strict=False)
        # A tied weight (embeddings / lm_head) may be gathered under one of its names only.
        own = fresh.state_dict()
        ptrs: dict[int, int] = {}
        for t in own.values():
            ptrs[t.data_ptr()] = ptrs.get(t.data_ptr(), 0) + 1
        tied = {k for k, t in own.items() if ptrs[t.data_ptr()] > 1}
        missing = [k for k in missing if k not in tied]
        if unexpected or [k for k in missing if "lora_" in k or self.peft_cfg.name == "none"]:
            raise RuntimeError(f"FSDP export: gathered weights do not fit the backbone (missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]})")
        return fresh


class PerceptionSFTModule(BackboneModule):
    """Stage 1: caption NLL, loss on `<think>{caption}</think><|im_end|>` tokens only."""

    def training_step(self, batch, batch_idx):
        inputs = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        out = self.model(**inputs, use_cache=False)
        self.log("train/loss_caption", out.loss, prog_bar=True, batch_size=int(inputs["input_ids"].shape[0]))
        return out.loss

    def validation_step(self, batch, batch_idx):
        """Caption loss on held-out videos, and the same captions under another video of the batch:
        `val/video_gain` (shuffled minus matched) is how much seeing the right video helps; near 0
        means the model writes captions without looking."""
        def loss(enc):
            inputs = {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}
            return self.model(**inputs, use_cache=False).loss

        if "shuffled" not in batch:  # a last batch of one video has no other video to swap in
            return
        n = int(batch["matched"]["input_ids"].shape[0])
        matched, shuffled = loss(batch["matched"]), loss(batch["shuffled"])
        self.log("val/loss_caption", matched, batch_size=n)
        self.log("val/loss_caption_shuffled", shuffled, batch_size=n)
        self.log("val/video_gain", shuffled - matched, prog_bar=True, batch_size=n)


class RerankingModule(BackboneModule):
    """Stage 2: `stage2_loss` over query groups; val nDCG@10 of the reranked first-stage heads."""

    def __init__(self, *, loss: dict, val_qrels: dict | None = None, prompt: str = "paper", **kwargs):
        super().__init__(**kwargs)
        self.prompt = get_preset(prompt).name
        self.loss_cfg = Stage2LossConfig.from_mapping(loss)
        self.val_qrels = val_qrels or {}
        self._val_scores: dict[str, dict[str, float]] = {}

    def training_step(self, batch, batch_idx):
        g, n = batch["labels"].shape
        scores = score_batch(self.model, batch["inputs"], prompt=self.prompt).view(g, n)
        terms = stage2_loss_batch(scores, batch["labels"], batch["teacher"], batch["mask"], **self.loss_cfg.as_kwargs())
        self.log("train/loss", terms["total"], prog_bar=True, batch_size=g)
        for key, name in (("pairwise", "loss_pair"), ("distill", "loss_distill"), ("pointwise", "loss_point")):
            self.log(f"train/{name}", terms[key], batch_size=g)
        pos = scores[:, 0]
        neg = scores[:, 1:][batch["mask"][:, 1:]]
        self.log("train/margin", pos.mean() - neg.mean(), batch_size=g)
        return terms["total"]

    def on_validation_epoch_start(self) -> None:
        self._val_scores = {}

    def validation_step(self, batch, batch_idx):
        scores = score_encoded_group(self.model, batch["inputs"], batch["pixels"], batch["grid"],
                                     prompt=self.prompt).tolist()
        for qid, doc, s in zip(batch["qids"], batch["doc_ids"], scores):
            self._val_scores.setdefault(qid, {})[doc] = float(s)

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores or not self.val_qrels:
            return
        qrels = {q: self.val_qrels[q] for q in self._val_scores if q in self.val_qrels}
        result = evaluate(self._val_scores, qrels, measures=("nDCG@10",))
        self.log("val/ndcg@10", result.mean["nDCG@10"], prog_bar=True)
