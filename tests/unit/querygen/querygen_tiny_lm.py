"""A real tiny causal LM built locally (no hub): a randomly initialised 2-layer Llama with a
byte-level BPE tokenizer trained on a few sentences and a chat template, saved to a folder that
`generator=hf generator.model=FOLDER` loads like any checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "flood in Lisbon with a red circle moving left",
    "parade in Lima where a blue square appears before a green triangle",
    "news video of a fire with the word EVACUATE on screen",
    "the reporter talks about rescue boats and closed roads",
    "Title: Storm footage. Description: Video filmed in Oslo.",
] * 20


def build_tiny_lm(folder: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token=None, padding_side="left")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg)
    # Only tokens made of letters and spaces (and the end of turn) can be generated, so the random
    # model writes words: some answers pass the parser, others are dropped for a reason.
    vocab = tok.get_vocab()
    wordy = {i for t, i in vocab.items() if tok.decode([i]).replace(" ", "").isalpha() and tok.decode([i]).isascii()}
    model.generation_config.suppress_tokens = sorted(set(vocab.values()) - wordy - {tok.eos_token_id})
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))
