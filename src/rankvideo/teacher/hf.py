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

`conventions="official"` reads pairs as the official teacher (`rankvideo/generate_reasoning.py` of
the official code) does, where it differs from the above:
- the answer ids are those of " yes" and " no" with their leading space (the last token of each),
  read right after `<answer>`;
- generation stops at `</answer>` (left out of the text), and the teacher's yes/no answer
  (`says_yes`, which mining uses next to the margin) is parsed from the generated text by the
  official rule (`parse_official_answer`), not taken from the margin's sign;
- the margin is read after the last `<answer>` the model wrote, at the end of the text it wrote
  up to there (when it wrote none, where `continuation` puts one: the official code has no margin
  for such a pair);
- the evidence is the caption only, as `[Caption] ...`, cut to its first 512 words (the official
  defaults: 512 caption tokens counted as words without a tokenizer, 0 ASR tokens).
The prompt wording stays this module's own.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import TeacherBase, TeacherOutput, split_evidence

log = logging.getLogger(__name__)

__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "CONVENTIONS",
    "SYSTEM_PROMPT",
    "USER_PROMPT",
    "HFTeacher",
    "answer_token_ids",
    "build_teacher_messages",
    "continuation",
    "official_answer_token_ids",
    "official_continuation",
    "official_evidence",
    "parse_official_answer",
]

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CONVENTIONS = ("project", "official")
# The official teacher's evidence budget (generate_reasoning.py defaults): the caption's first 512
# tokens, counted as whitespace words when no tokenizer is named; no transcript (0 tokens).
OFFICIAL_CAPTION_WORDS = 512
OFFICIAL_ASR_WORDS = 0

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


def build_teacher_messages(query: str, evidence: str, *, empty: str = "(no evidence)") -> list[dict]:
    """The chat of one pair; `empty` stands in for an empty evidence text."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT.format(query=query, evidence=evidence or empty)},
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


def official_answer_token_ids(tokenizer) -> tuple[int, int]:
    """The official teacher's answer ids: the last token of " yes" and of " no" (leading space), or
    of the bare words when the tokenizer encodes either spaced word to nothing. A word of several
    tokens is read at its last token, as there (logged)."""
    yes = tokenizer.encode(" yes", add_special_tokens=False)
    no = tokenizer.encode(" no", add_special_tokens=False)
    if not yes or not no:
        yes, no = tokenizer.encode("yes", add_special_tokens=False), tokenizer.encode("no", add_special_tokens=False)
    if len(yes) > 1 or len(no) > 1:
        log.warning("official teacher conventions: ' yes' -> %s, ' no' -> %s; reading the last token of each", yes, no)
    if yes[-1] == no[-1]:
        raise ValueError(f"' yes' and ' no' end in the same token id {yes[-1]}")
    return int(yes[-1]), int(no[-1])


def parse_official_answer(text: str) -> bool:
    """The official teacher's yes/no from its generated text: inside the first
    `<answer>...</answer>`, "no" anywhere means no, else "yes" anywhere means yes; without such a
    block (or with neither word in it), yes only if the last 200 characters contain "yes" and no
    "no" at all, as substrings, case-insensitively ("not" or "know" there make it a no). Generation
    stops at `</answer>` and leaves it out, so a completed answer is judged by the last-200 rule."""
    if not text:
        return False
    block = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL | re.IGNORECASE)
    if block:
        inner = block.group(1).strip().lower()
        if "no" in inner:
            return False
        if "yes" in inner:
            return True
    tail = text[-200:].lower()
    return "yes" in tail and "no" not in tail


def official_continuation(generated: str, prompt: str = "") -> str:
    """Under the official conventions, what the answer is read after: the generated text up to and
    including the last `<answer>` the model wrote; `continuation`'s rule when it wrote none."""
    at = generated.rfind(ANSWER_OPEN)
    if at < 0:
        return continuation(generated, prompt)
    return generated[:at] + ANSWER_OPEN


def official_evidence(evidence: str, caption_words: int = OFFICIAL_CAPTION_WORDS, asr_words: int = OFFICIAL_ASR_WORDS) -> str:
    """The official teacher's passage from this project's evidence text (`evidence_text`):
    `[Caption] <first caption_words words>` and, when asr_words > 0, a `[ASR] ...` line; other
    fields are not read; empty when there is nothing to show."""
    fields = split_evidence(evidence)

    def cut(text: str, n: int) -> str:
        return " ".join(text.split()[:n]) if n > 0 and text else ""

    caption, asr = cut(fields.get("caption", ""), caption_words), cut(fields.get("asr", ""), asr_words)
    return "\n".join(part for part in (f"[Caption] {caption}" if caption else "", f"[ASR] {asr}" if asr else "") if part)


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
                 dtype: str = "auto", device: str = "auto", batch_size: int = 8, local_files_only: bool | None = None,
                 conventions: str = "project"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_new_tokens < 0:
            raise ValueError(f"teacher.max_new_tokens must be >= 0, got {max_new_tokens}")
        if conventions not in CONVENTIONS:
            raise ValueError(f"teacher.conventions={conventions!r}: must be one of {', '.join(CONVENTIONS)}")
        self.official = conventions == "official"
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
        self.yes_id, self.no_id = (official_answer_token_ids if self.official else answer_token_ids)(self.tokenizer)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.path, dtype=_resolve_dtype(dtype, self.device), **kw).to(self.device).eval()
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self._keep_last = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def prompts(self, queries: Sequence[str], evidences: Sequence[str]) -> list[str]:
        queries, evidences = self._check_pairs(queries, evidences)
        if self.official:  # its passage format, and an empty passage left empty
            return [self.tokenizer.apply_chat_template(build_teacher_messages(q, official_evidence(e), empty=""),
                                                       tokenize=False, add_generation_prompt=True)
                    for q, e in zip(queries, evidences)]
        return [self.tokenizer.apply_chat_template(build_teacher_messages(q, e), tokenize=False, add_generation_prompt=True)
                for q, e in zip(queries, evidences)]

    def _encode(self, texts: list[str]):
        # The chat template already wrote any BOS/control tokens the model needs.
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    def _generate(self, prompts: list[str]) -> list[str]:
        import torch

        enc = self._encode(prompts)
        # Official conventions: stop at </answer> and leave it (and anything decoded past it) out of
        # the text, as vLLM's stop strings do there.
        stop = {"stop_strings": [ANSWER_CLOSE], "tokenizer": self.tokenizer} if self.official else {}
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id, **stop)
        new = out[:, enc["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [t.split(ANSWER_CLOSE, 1)[0] for t in texts] if self.official else texts

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
        margins, reasonings, written = [], [], []
        for i in range(0, len(prompts), self.batch_size):
            chunk = prompts[i:i + self.batch_size]
            generated = self._generate(chunk) if self.max_new_tokens > 0 else [""] * len(chunk)
            if self.official:
                conts = [official_continuation(g, p) for g, p in zip(generated, chunk)]
                written += [parse_official_answer(g) for g in generated]
                reasonings += [g.strip() for g in generated]
            else:
                conts = [continuation(g, p) for g, p in zip(generated, chunk)]
                reasonings += [c[: -len(ANSWER_OPEN)].strip() for c in conts]
            margins.append(self._answer_margins([p + c for p, c in zip(chunk, conts)]))
        d = np.concatenate(margins) if margins else np.zeros(0)
        if not np.all(np.isfinite(d)):
            raise FloatingPointError(f"teacher {self.path}: non-finite yes/no margins")
        if self.official:  # the answer the text gives, which may disagree with the margin's sign
            return TeacherOutput(margins=d, says_yes=np.asarray(written, dtype=bool), reasonings=reasonings)
        # The answer is the argmax of the two answer logits at the answer position: the same
        # quantity the margin measures, so says_yes == (d > 0) by construction here.
        return TeacherOutput(margins=d, says_yes=d > 0, reasonings=reasonings)

    def margins(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        return self.judge(queries, evidences).margins
