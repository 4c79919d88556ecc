"""PEFT on the backbone: `none` (full fine-tuning), `lora`, `qlora` (LoRA on a 4-bit NF4 base, GPU only)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig


def bnb_config(peft_cfg: DictConfig):
    """The `BitsAndBytesConfig` a qlora config describes (built without a GPU; loading needs one).
    Missing keys take the official code's values: NF4, bf16 compute, double quantization."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=str(peft_cfg.get("quant_type", "nf4")),
                              bnb_4bit_compute_dtype=getattr(torch, str(peft_cfg.get("compute_dtype", "bfloat16"))),
                              bnb_4bit_use_double_quant=bool(peft_cfg.get("double_quant", True)))


def quantization_config(peft_cfg: DictConfig | None):
    """bitsandbytes 4-bit config for qlora (`bnb_config`); a clear error where it cannot work."""
    if not peft_cfg or not peft_cfg.get("quantize_4bit", False):
        return None
    if not torch.cuda.is_available():
        raise RuntimeError("peft=qlora quantizes the base to 4-bit NF4 with bitsandbytes, which needs a CUDA GPU; "
                           "on the CPU use peft=lora or peft=none")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise RuntimeError("peft=qlora needs bitsandbytes: pip install bitsandbytes") from e
    return bnb_config(peft_cfg)


def apply_peft(model, peft_cfg: DictConfig | None, *, adapter: str | None = None):
    """Wrap `model` for training. With `adapter` (a folder saved by an earlier stage under LoRA),
    that adapter is loaded and trained further instead of a fresh one."""
    name = peft_cfg.name if peft_cfg else "none"
    if name == "none":
        return model
    if name not in ("lora", "qlora"):
        raise ValueError(f"peft={name!r}: unknown (none | lora | qlora)")
    from peft import LoraConfig, PeftModel, get_peft_model

    if peft_cfg.get("quantize_4bit", False):
        # What the official trainers get from TRL for a 4-bit base: the base frozen, its remaining
        # half-precision weights (norms, embeddings) in fp32, gradient checkpointing on.
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(peft_cfg.get("gradient_checkpointing", True)),
            gradient_checkpointing_kwargs={"use_reentrant": False})
    if adapter:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True)
    lora = LoraConfig(r=int(peft_cfg.r), lora_alpha=int(peft_cfg.alpha), lora_dropout=float(peft_cfg.dropout),
                      target_modules=str(peft_cfg.target_modules), bias="none")
    return get_peft_model(model, lora)


def load_trained(checkpoint: str, *, base: str, dtype=None, trust_remote_code: bool = False):
    """(model, processor) of a trained stage for inference: a full model folder, or a LoRA adapter
    folder (has adapter_config.json) on top of `base`, merged for speed."""
    from pathlib import Path

    from ..models.tiny import load_backbone, load_processor
    from ..models.scoring import yes_no_token_ids

    ckpt = Path(checkpoint)
    if not ckpt.is_dir():
        raise FileNotFoundError(f"trained model folder {ckpt} does not exist: run the training stage first")
    if (ckpt / "adapter_config.json").exists():
        from peft import PeftModel

        model, _ = load_backbone(base, trust_remote_code=trust_remote_code, dtype=dtype)
        model = PeftModel.from_pretrained(model, str(ckpt)).merge_and_unload()
        processor = load_processor(ckpt, trust_remote_code=trust_remote_code)
        model._rankvideo_yes_no_ids = yes_no_token_ids(processor.tokenizer)
    else:
        model, processor = load_backbone(ckpt, trust_remote_code=trust_remote_code, dtype=dtype)
    model.eval()
    return model, processor
