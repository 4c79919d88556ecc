"""Lightning strategies from `conf/trainer/*`: FSDP with each decoder layer of the language
model as its own unit, bf16 mixed precision (GPUs)."""

from __future__ import annotations

import importlib

from omegaconf import DictConfig


def _layer_classes(names) -> set[type]:
    """Decoder-layer classes by name, from the transformers models that define them."""
    modules = ("transformers.models.qwen3_vl.modeling_qwen3_vl", "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl")
    found = set()
    for name in names:
        for mod in modules:
            cls = getattr(importlib.import_module(mod), name, None)
            if cls is not None:
                found.add(cls)
                break
        else:
            raise ValueError(f"trainer.fsdp.wrap_layers: no class {name!r} in {modules}")
    return found


def fsdp_strategy(t: DictConfig):
    import torch
    from lightning.pytorch.strategies import FSDPStrategy

    if not torch.cuda.is_available():
        raise RuntimeError("trainer=fsdp needs CUDA GPUs (Lightning's FSDP refuses the CPU); use trainer=cpu or trainer=ddp")
    layers = _layer_classes(t.fsdp.wrap_layers)
    return FSDPStrategy(
        auto_wrap_policy=layers,
        activation_checkpointing_policy=layers if t.fsdp.activation_checkpointing else None,
        sharding_strategy=str(t.fsdp.sharding_strategy),
        state_dict_type="sharded",
    )
