"""FSDP export and gradient clipping on the CPU: a one-process gloo group stands in for the GPUs.

Under trainer=fsdp the trained weights live in FSDP's flat shards; export gathers them into a fresh,
unwrapped backbone (full model under peft=none, adapter only under LoRA) and gradient clipping goes
through the root FSDP module. The same code ran on an H200 (tests/gpu)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing, checkpoint_wrapper
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

from rankvideo.models.tiny import build_tiny_qwen3_vl
from rankvideo.modules.reranker import RerankingModule
from rankvideo.modules.strategies import _layer_classes

LORA = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "quantize_4bit": False,
        "target_modules": r".*language_model.*\.(q_proj|v_proj)"}


class FSDPStrategy:
    """What export and clipping read of Lightning's FSDPStrategy (matched by class name)."""

    is_global_zero = True

    def __init__(self, root):
        self.model = root

    def barrier(self, *_):
        pass


class _Trainer:
    def __init__(self, strategy):
        self.strategy = strategy


@pytest.fixture(scope="module")
def group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("fsdp") / "m", corpus=["a red circle moves left"] * 20, seed=0)


def _wrapped(base, peft):
    module = RerankingModule(model_path=str(base), loss={}, peft=peft)
    module.configure_model()
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    layers = _layer_classes(["Qwen3VLTextDecoderLayer"])
    root = FSDP(module, auto_wrap_policy=ModuleWrapPolicy(layers), use_orig_params=True, device_id=torch.device("cpu"))
    apply_activation_checkpointing(root, checkpoint_wrapper_fn=checkpoint_wrapper, check_fn=lambda m: type(m) in layers)
    module._trainer = _Trainer(FSDPStrategy(root))
    return module, root, before


@pytest.mark.parametrize("peft,changed", [({"name": "none"}, "all"), (LORA, "lora")])
def test_export_gathers_the_trained_weights_from_fsdp_shards(group, base, tmp_path, peft, changed):
    module, root, before = _wrapped(base, peft)
    with torch.no_grad():
        for p in root.parameters():
            if p.requires_grad:
                p.add_(0.01)  # "training"
    module.export(tmp_path / "out", processor=type("P", (), {"save_pretrained": lambda self, d: None})())
    fresh = module._unsharded_copy(module._trainer.strategy)
    after = fresh.state_dict()
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    if changed == "all":
        assert moved == set(after) and (tmp_path / "out" / "config.json").exists()
    else:
        assert moved == {k for k in after if "lora_" in k} and len(moved) == 8
        assert (tmp_path / "out" / "adapter_config.json").exists()
    # Exactly the trained values, not a re-initialisation.
    key = sorted(moved)[0]
    assert torch.allclose(after[key], before[key] + 0.01)


def test_gradient_clipping_goes_through_the_fsdp_root(group, base):
    module, root, _ = _wrapped(base, {"name": "none"})
    for p in root.parameters():
        p.grad = torch.full_like(p, 10.0)
    module.configure_gradient_clipping(None, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    total = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in root.parameters()))
    assert total == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ValueError, match="norm only"):
        module.configure_gradient_clipping(None, gradient_clip_val=1.0, gradient_clip_algorithm="value")
