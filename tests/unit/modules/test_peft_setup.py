"""peft=qlora is the official code's QLoRA: NF4 4-bit weights, bf16 compute, double quantization,
and the base prepared for k-bit training before the adapter is added (what TRL does there)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_cfg
from rankvideo.modules import peft_setup


def test_qlora_config_is_nf4_bf16_double_quant():
    cfg = compose_cfg(["peft=qlora"]).peft
    assert (cfg.name, cfg.r, cfg.alpha, cfg.dropout) == ("qlora", 16, 32, 0.05)  # the official LoRA
    bnb = peft_setup.bnb_config(cfg)
    assert bnb.load_in_4bit and not bnb.load_in_8bit
    assert bnb.bnb_4bit_quant_type == "nf4"
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
    assert bnb.bnb_4bit_use_double_quant is True
    assert peft_setup.quantization_config(compose_cfg(["peft=lora"]).peft) is None
    assert peft_setup.quantization_config(compose_cfg([]).peft) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU error only")
def test_qlora_on_the_cpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        peft_setup.quantization_config(compose_cfg(["peft=qlora"]).peft)


def _tiny_lm():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    return Qwen3ForCausalLM(Qwen3Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=8))


@pytest.mark.parametrize("name, prepared", [("qlora", True), ("lora", False)])
def test_a_4bit_base_is_prepared_before_the_adapter(monkeypatch, name, prepared):
    import peft

    calls = []
    real = peft.prepare_model_for_kbit_training
    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", lambda m, **kw: calls.append(kw) or real(m, **kw))
    cfg = OmegaConf.merge(compose_cfg([f"peft={name}"]).peft, {"target_modules": r".*\.(q_proj|v_proj)"})
    model = peft_setup.apply_peft(_tiny_lm(), cfg)
    assert calls == ([{"use_gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}}]
                     if prepared else [])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
