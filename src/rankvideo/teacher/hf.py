"""A reasoning teacher from any transformers causal LM (the paper uses ReasonRank / a Qwen3 model).

The LM reads the query and the caption/ASR evidence in a chat prompt that asks for
`<think>...</think><answer>yes|no</answer>`. With `max_new_tokens` > 0 it first writes its
reasoning (greedy, so the label is deterministic); the reasoning is cut at any `<answer>` it wrote
itself, an unclosed `<think>` is closed, and `<answer>` is appended. With `max_new_tokens` = 0 the
answer is read directly after the generation prompt, no reasoning. Either way the margin is
d = logit("yes") - logit("no") of the very next token, read in one forward pass over the whole
text, exactly like the student's score (../../shared/paper-notes.md, "Model and score").

Reading one logit per answer word only means something if "yes" and "no" are single tokens right
after `<answer>`: that is checked when the teacher is built, with an error naming the tokenization.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import TeacherBase, TeacherOutput

log = logging.getLogger(__name__)

__all__ = [
    "ANSWER_OPEN",
    "SYSTEM_PROMPT",
    "USER_PROMPT",
    "HFTeacher",
    "answer_token_ids",
    "build_teacher_messages",
    "continuation",
]

ANSWER_OPEN = "<answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# Our own wording. What matters for the behaviour (paper section 3, item 4; the official
# generate_reasoning.py): the teacher only has text evidence, reasons first inside <think>, then
# answers yes or no inside <answer>.
SYSTEM_PROMPT = (
    "You judge whether a video is relevant to a search query. You cannot watch the video: you are given "
    "text evidence about it, a caption describing what can be seen and a transcript of what is said."
)
USER_PROMPT = (
    "Query: {query}\n\n"
    "Video evidence:\n{evidence}\n\n"
    "First reason briefly, inside <think> and </think>, about whether the evidence shows what the query asks for. "
    "Then answer <answer>yes</answer> if the video is relevant to the query or <answer>no</answer> if it is not."
)


def build_teacher_messages(query: str, evidence: str) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT.format(query=query, evidence=evidence or "(no evidence)")},
    ]


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Token ids of "yes" and "no" as they follow `<answer>`; ValueError unless each is one token."""
    prefix = tokenizer.encode(ANSWER_OPEN, add_special_tokens=False)
    ids = []
    for word in ("yes", "no"):
        alone = tokenizer.encode(word, add_special_tokens=False)
        after = tokenizer.encode(ANSWER_OPEN + word, add_special_tokens=False)
        if len(alone) != 1 or after != prefix + alone:
            raise ValueError(
                f"the teacher's tokenizer does not encode {word!r} as a single token after {ANSWER_OPEN!r} "
                f"({word!r} -> {alone}, {ANSWER_OPEN + word!r} -> {after}, {ANSWER_OPEN!r} -> {prefix}); "
                "the margin reads one logit per answer word, so this tokenizer cannot be used as a teacher")
        ids.append(alone[0])
    if ids[0] == ids[1]:
        raise ValueError(f"'yes' and 'no' map to the same token id {ids[0]}")
    return ids[0], ids[1]


def continuation(generated: str, prompt: str = "") -> str:
    """What follows the generation prompt before the answer is read: the model's reasoning, cut at
    any answer it wrote itself (its answer is re-read from the logits, never parsed from text), a
    still-open `<think>` closed, then `<answer>`. The prompt counts for "still open": some chat
    templates (R1-style reasoning models) already end the generation prompt with `<think>`."""
    reasoning = generated.split(ANSWER_OPEN, 1)[0]
    text = prompt + reasoning
    if text.rfind(THINK_OPEN) > text.rfind(THINK_CLOSE):
        reasoning = reasoning.rstrip() + THINK_CLOSE
    return reasoning + ANSWER_OPEN


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise ValueError(f"teacher.dtype={dtype!r} is not a torch dtype (float32 | bfloat16 | float16 | auto)")
    return getattr(torch, dtype)


class HFTeacher(TeacherBase):
    """A transformers causal LM judging (query, evidence) pairs."""

    name = "hf"

    def __init__(self, path: str | Path, *, max_new_tokens: int = 0, trust_remote_code: bool = False,
                 dtype: str = "auto", device: str = "auto", batch_size: int = 8, local_files_only: bool | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_new_tokens < 0:
            raise ValueError(f"teacher.max_new_tokens must be >= 0, got {max_new_tokens}")
        self.path = str(path)
        # A local folder never needs the hub; a hub id does, unless HF_HUB_OFFLINE says otherwise.
        if local_files_only is None:
            local_files_only = Path(self.path).is_dir()
        self.device = _resolve_device(device)
        kw = {"trust_remote_code": bool(trust_remote_code), "local_files_only": bool(local_files_only)}
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, **kw)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{self.path}: the tokenizer has no chat template; the teacher prompt is a chat")
        # Left padding: every row's last real token sits at position -1, where the answer is read,
        # and generation continues every row from its own end.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.yes_id, self.no_id = answer_token_ids(self.tokenizer)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.path, dtype=_resolve_dtype(dtype, self.device), **kw).to(self.device).eval()
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self._keep_last = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def prompts(self, queries: Sequence[str], evidences: Sequence[str]) -> list[str]:
        queries, evidences = self._check_pairs(queries, evidences)
        return [self.tokenizer.apply_chat_template(build_teacher_messages(q, e), tokenize=False, add_generation_prompt=True)
                for q, e in zip(queries, evidences)]

    def _encode(self, texts: list[str]):
        # The chat template already wrote any BOS/control tokens the model needs.
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    def _generate(self, prompts: list[str]) -> list[str]:
        import torch

        enc = self._encode(prompts)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def _answer_margins(self, texts: list[str]) -> np.ndarray:
        import torch

        enc = self._encode(texts)
        mask = enc["attention_mask"]
        # Positions count real tokens only, so a left-padded row is computed exactly as it would be
        # alone (a plain forward pass would number the pad tokens too).
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        kw = {"logits_to_keep": 1} if self._keep_last else {}
        with torch.inference_mode():
            logits = self.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=position_ids, **kw).logits[:, -1, :]
        logits = logits.float()
        return (logits[:, self.yes_id] - logits[:, self.no_id]).cpu().numpy().astype(np.float64)

    def judge(self, queries: Sequence[str], evidences: Sequence[str]) -> TeacherOutput:
        prompts = self.prompts(queries, evidences)
        margins, reasonings = [], []
        for i in range(0, len(prompts), self.batch_size):
            chunk = prompts[i:i + self.batch_size]
            generated = self._generate(chunk) if self.max_new_tokens > 0 else [""] * len(chunk)
            conts = [continuation(g, p) for g, p in zip(generated, chunk)]
            margins.append(self._answer_margins([p + c for p, c in zip(chunk, conts)]))
            reasonings += [c[: -len(ANSWER_OPEN)].strip() for c in conts]
        d = np.concatenate(margins) if margins else np.zeros(0)
        if not np.all(np.isfinite(d)):
            raise FloatingPointError(f"teacher {self.path}: non-finite yes/no margins")
        # The answer is the argmax of the two answer logits at the answer position: the same
        # quantity the margin measures, so says_yes == (d > 0) by construction here.
        return TeacherOutput(margins=d, says_yes=d > 0, reasonings=reasonings)

    def margins(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        return self.judge(queries, evidences).margins
