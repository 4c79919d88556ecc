"""One validation step every entry point runs before any work: the numbers of a composed config
that would otherwise fail late (after stage 1 has trained) or silently (zero epochs) are checked
here, with the key and the value in the message.

Only the nodes present are checked: a DVC stage sees just the params it declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

__all__ = ["ConfigError", "validate_config"]


class ConfigError(ValueError):
    """A config value is out of its range; the message names the key and the value."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "int>=1": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "int>=0": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "int>=2": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    ">0": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    ">=0": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "[0,1)": (lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
}

_CHECKS = {
    "curriculum.fps": ">0",
    "rerank.depth": "int>=1", "rerank.fps": ">0", "rerank.max_frames": "int>=1", "rerank.batch_size": "int>=1",
    "rerank.num_workers": "int>=0", "curriculum.stage1.num_workers": "int>=0", "curriculum.stage2.num_workers": "int>=0",
    "retrieval.depth": "int>=1",
    "pretrain.epochs": "int>=1", "pretrain.steps_per_epoch": "int>=1", "pretrain.batch_size": "int>=1",
    "pretrain.lr": ">0", "pretrain.warmup_ratio": "[0,1)", "pretrain.weight_decay": ">=0",
    "pretrain.vision_lr_scale": ">=0", "pretrain.threads": "int>=1", "pretrain.eval_batch_size": "int>=1",
    "pretrain.val_every_n_epochs": "int>=1", "pretrain.num_workers": "int>=0",
    "pretrain.corpus.num_videos": "int>=1", "pretrain.corpus.num_heldout": "int>=1", "pretrain.corpus.fps": ">0",
    "pretrain.corpus.max_frames": "int>=1",
    "proxies.captioner.num_frames": "int>=1", "proxies.captioner.fps": ">0", "proxies.captioner.max_new_tokens": "int>=1",
    "proxies.ocr.fps": ">0", "proxies.ocr.max_frames": "int>=1", "proxies.ocr.upscale": "int>=1",
    "proxies.ocr.min_chars": "int>=0", "proxies.asr.chunk_seconds": ">0",
}
for _s in ("stage1", "stage2"):
    _CHECKS.update({f"curriculum.{_s}.epochs": "int>=1", f"curriculum.{_s}.batch_size": "int>=1",
                    f"curriculum.{_s}.lr": ">0", f"curriculum.{_s}.warmup_ratio": "[0,1)",
                    f"curriculum.{_s}.weight_decay": ">=0", f"curriculum.{_s}.max_frames": "int>=1",
                    f"curriculum.{_s}.accumulate_grad_batches": "int>=1"})
_CHECKS.update({"curriculum.stage2.num_negatives": "int>=1", "curriculum.stage2.pool_depth": "int>=1",
                "curriculum.stage2.val_depth": "int>=1", "curriculum.stage2.val_every_n_epochs": "int>=1",
                "curriculum.stage2.negatives_with_replacement": "bool", "peft.quantize_4bit": "bool",
                "peft.double_quant": "bool", "peft.gradient_checkpointing": "bool"})
_CHECKS.update({"generator.max_new_tokens": "int>=1", "generator.batch_size": "int>=1", "generator.do_sample": "bool",
                "generator.temperature": ">0", "generator.parse.min_words": "int>=1", "generator.parse.max_words": "int>=1",
                "generator.parse.max_chars": "int>=1", "generator.parse.copy_min_words": "int>=1",
                "generator.parse.copy_fraction": ">0", "generator.parse.dup_jaccard": ">0",
                "generator.parse.max_repeats": "int>=2"})

# Keys with a fixed set of values (checked where present).
_CHOICES = {
    "synthesis.queries": ("templates", "generator"),
    "generator.name": ("smollm2", "hf", "vllm"),
    "eval.average": ("all_judged", "ranked"),
    "teacher.conventions": ("project", "official"),
    "proxies.captioner.name": ("tiny", "hf", "vllm", "none"),
    "proxies.asr.name": ("pocketsphinx", "whisper", "none"),
    "proxies.ocr.name": ("tesseract", "easyocr", "none"),
    "peft.quant_type": ("nf4", "fp4"),
    "peft.compute_dtype": ("bfloat16", "float16", "float32"),
}


def _select(cfg: DictConfig, key: str):
    """(present, value) of a dotted key, without tripping struct mode on an undeclared node."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


# Checks that import the training code (torch, Lightning), run only for the stages that read them.
LOSS_STAGES = ("stage2", "train")
SCHEDULE_STAGES = ("pretrain",)


def validate_config(cfg: DictConfig, stage: str | None = None) -> None:
    """Raise ConfigError for the first value out of range (loss weights and temperatures, epochs,
    batch sizes and gradient accumulation, depths, frame rates and counts, learning rates, the
    model's frame sampling rule and visual budget, the choices of eval.average, teacher.conventions
    and the 4-bit quantization, QLoRA under FSDP). With `stage`, the stage-2 loss
    and the pre-training schedule are checked only for the stages that use them."""
    for key, rule in _CHECKS.items():
        present, value = _select(cfg, key)
        if not present:
            continue
        ok, what = _RULES[rule]
        if not ok(value):
            raise ConfigError(f"{key}={value!r}: must be {what}")
    for key, allowed in _CHOICES.items():
        present, value = _select(cfg, key)
        if present and value not in allowed:
            raise ConfigError(f"{key}={value!r}: must be one of {', '.join(allowed)}")
    present, quantize = _select(cfg, "peft.quantize_4bit")
    has_strategy, strategy = _select(cfg, "trainer.strategy")
    if present and quantize and has_strategy and strategy == "fsdp":
        # FSDP flattens parameters of one dtype per unit; bitsandbytes' packed 4-bit weights are not.
        raise ConfigError("peft=qlora with trainer=fsdp: a 4-bit base cannot be sharded here; "
                          "use trainer=ddp (data parallel, as the official code) or trainer=gpu")
    present, name = _select(cfg, "teacher.name")
    has_conv, conventions = _select(cfg, "teacher.conventions")
    if present and has_conv and conventions == "official" and name != "hf":
        raise ConfigError(f"teacher.conventions=official: only the hf teacher reads them, not teacher={name}")
    present, loss = _select(cfg, "loss")
    if present and isinstance(loss, DictConfig) and (stage is None or stage in LOSS_STAGES):
        from ..losses import Stage2LossConfig

        values = {k: v for k, v in OmegaConf.to_container(loss, resolve=True).items() if k != "name"}
        for k, v in values.items():
            if not _is_num(v):
                raise ConfigError(f"loss.{k}={v!r}: must be a number")
        try:
            Stage2LossConfig.from_mapping(values)
        except ValueError as e:
            raise ConfigError(f"loss: {e}") from None
    present, prompt = _select(cfg, "prompt.name")
    if present:
        from ..models.prompts import PRESETS

        if prompt not in PRESETS:
            raise ConfigError(f"prompt.name={prompt!r}: must be one of {', '.join(sorted(PRESETS))} "
                              "(choose with prompt=NAME)")
    present, model = _select(cfg, "model")
    if present and isinstance(model, DictConfig):
        from ..data.clips import clip_options

        try:
            clip_options(model)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    present, schedule = _select(cfg, "pretrain.schedule")
    if present and (stage is None or stage in SCHEDULE_STAGES):
        from ..modules.pretraining import parse_schedule

        try:
            parse_schedule(OmegaConf.to_container(schedule, resolve=True))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(str(e)) from None
    present, node = _select(cfg, "pretrain")
    rounds = present and isinstance(node, DictConfig) and (node.get("continued") or node.get("extra_rounds"))
    if rounds and (stage is None or stage in SCHEDULE_STAGES):
        from ..modules.pretraining import parse_rounds

        try:
            parse_rounds(OmegaConf.to_container(node, resolve=True))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(str(e)) from None
