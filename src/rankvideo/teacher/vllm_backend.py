"""The reasoning teacher on vLLM (GPU), for teacher labels at the paper's scale.

Same prompt, same reasoning-then-answer protocol and the same margin as `hf.HFTeacher`
(`hf.continuation`, `hf.answer_token_ids`), so labels from the two backends are interchangeable
up to numerics. vLLM is imported only when this class is built: it is an optional, GPU-only
dependency and nothing else in the project needs it.

How the margin is read: vLLM returns top-k log-probabilities of *generated* tokens (and by default
from the raw logits), so "yes" and "no" may both be missing from a top-k list. Instead each pair is
scored twice as a prompt, ending in `<answer>yes` and in `<answer>no`, with `prompt_logprobs`:
the log-probability of the final prompt token is exact, both come from the same next-token
distribution, and their difference is logit(yes) - logit(no) (the normaliser cancels). With
prefix caching the second prompt costs one token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import TeacherBase, TeacherOutput
from .hf import ANSWER_OPEN, answer_token_ids, build_teacher_messages, continuation

__all__ = ["VLLMTeacher"]

INSTALL_HINT = ("the vllm teacher backend needs vLLM and a CUDA GPU: `pip install vllm` on a GPU machine "
                "(or use teacher=hf for transformers, or teacher=minilm offline on CPU)")


class VLLMTeacher(TeacherBase):
    name = "vllm"

    def __init__(self, path: str | Path, *, max_new_tokens: int = 512, trust_remote_code: bool = False,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, max_model_len: int = 8192,
                 dtype: str = "auto", seed: int = 0):
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise ImportError(INSTALL_HINT) from e
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(INSTALL_HINT + ": no CUDA device is visible")
        from transformers import AutoTokenizer
        from vllm import LLM

        self.path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=bool(trust_remote_code))
        self.yes_id, self.no_id = answer_token_ids(self.tokenizer)
        self.max_new_tokens = int(max_new_tokens)
        self.llm = LLM(model=self.path, trust_remote_code=bool(trust_remote_code), tensor_parallel_size=int(tensor_parallel_size),
                       gpu_memory_utilization=float(gpu_memory_utilization), max_model_len=int(max_model_len),
                       dtype=dtype, seed=int(seed), enable_prefix_caching=True)

    def prompts(self, queries: Sequence[str], evidences: Sequence[str]) -> list[str]:
        queries, evidences = self._check_pairs(queries, evidences)
        return [self.tokenizer.apply_chat_template(build_teacher_messages(q, e), tokenize=False, add_generation_prompt=True)
                for q, e in zip(queries, evidences)]

    def judge(self, queries: Sequence[str], evidences: Sequence[str]) -> TeacherOutput:
        from vllm import SamplingParams

        prompts = self.prompts(queries, evidences)
        if self.max_new_tokens > 0:
            # Greedy, and stopped where the answer would start: the answer is read from logits below.
            gen = SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens, stop=[ANSWER_OPEN])
            generated = [o.outputs[0].text if o.outputs else "" for o in self.llm.generate(prompts, gen, use_tqdm=False)]
        else:
            generated = [""] * len(prompts)
        conts = [continuation(g, p) for g, p in zip(generated, prompts)]
        ids = []
        for p, c in zip(prompts, conts):
            base = self.tokenizer.encode(p + c, add_special_tokens=False)
            ids += [base + [self.yes_id], base + [self.no_id]]
        score = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        outs = self.llm.generate([{"prompt_token_ids": t} for t in ids], score, use_tqdm=False)
        d = np.empty(len(prompts))
        for i in range(len(prompts)):
            lp_yes = outs[2 * i].prompt_logprobs[-1][self.yes_id].logprob
            lp_no = outs[2 * i + 1].prompt_logprobs[-1][self.no_id].logprob
            d[i] = float(lp_yes) - float(lp_no)
        if not np.all(np.isfinite(d)):
            raise FloatingPointError(f"teacher {self.path}: non-finite yes/no margins")
        return TeacherOutput(margins=d, says_yes=d > 0, reasonings=[c[: -len(ANSWER_OPEN)].strip() for c in conts])

    def margins(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        return self.judge(queries, evidences).margins
