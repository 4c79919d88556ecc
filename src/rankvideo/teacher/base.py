"""What every teacher backend provides, and the evidence text it reads.

The paper's teacher (section 3, item 4) is a *text* reasoning reranker: it reads a pair's caption
and ASR evidence, never the frames, and its confidence is the margin
d = logit("yes") - logit("no") at the answer position, p_yes = sigmoid(d). Every backend here
(calibrated MiniLM features, a transformers causal LM, vLLM) returns that same quantity, so mining
and distillation do not care which one produced it. Their margins live on different scales,
which is why the mining thresholds are per-backend config values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..data.benchmark import VideoDoc

__all__ = [
    "EVIDENCE_LABELS",
    "Teacher",
    "TeacherBase",
    "TeacherOutput",
    "evidence_text",
    "p_yes",
    "sigmoid",
    "split_evidence",
]

# Label of each VideoDoc text field in the evidence text. "Transcript" rather than "ASR": the
# text is read by language models, which know the word better than the acronym.
EVIDENCE_LABELS = {
    "caption": "Caption",
    "asr": "Transcript",
    "ocr": "On-screen text",
    "title": "Title",
    "description": "Description",
}
_LABEL_TO_FIELD = {v: k for k, v in EVIDENCE_LABELS.items()}
_WS = re.compile(r"\s+")


def evidence_text(doc: VideoDoc, fields: Sequence[str] = ("caption", "asr")) -> str:
    """"Caption: ...\\nTranscript: ..." for the given fields, in the given order.

    Each field's whitespace is collapsed to single spaces so that every field sits on exactly one
    line: :func:`split_evidence` can then take the text apart again without ambiguity (a backend
    that needs the fields separately, like MiniLM, gets them back from the same string an LLM
    reads). Empty fields are left out rather than shown empty, so an LLM is not told that a
    transcript exists and says nothing.
    """
    lines = []
    for f in fields:
        if f not in EVIDENCE_LABELS:
            raise ValueError(f"unknown evidence field {f!r}; known: {', '.join(EVIDENCE_LABELS)}")
        value = _WS.sub(" ", str(getattr(doc, f, "") or "")).strip()
        if value:
            lines.append(f"{EVIDENCE_LABELS[f]}: {value}")
    return "\n".join(lines)


def split_evidence(text: str) -> dict[str, str]:
    """Inverse of :func:`evidence_text`: {field: value} for the fields present (others absent).

    A line without a known label is appended to the previous field (evidence written by hand may
    wrap); text before any label counts as the caption, the paper's primary evidence.
    """
    out: dict[str, str] = {}
    current = "caption"
    for line in text.splitlines():
        label, sep, rest = line.partition(": ")
        if sep and label in _LABEL_TO_FIELD:
            current = _LABEL_TO_FIELD[label]
            out[current] = (out.get(current, "") + " " + rest.strip()).strip()
        elif line.strip():
            out[current] = (out.get(current, "") + " " + line.strip()).strip()
    return out


def sigmoid(d) -> np.ndarray:
    """Numerically stable logistic function (no overflow warning at |d| ~ 1000)."""
    d = np.asarray(d, dtype=np.float64)
    out = np.empty_like(d)
    pos = d >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-d[pos]))
    e = np.exp(d[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def p_yes(margins) -> np.ndarray:
    """p_yes = sigmoid(logit yes - logit no), the paper's teacher probability."""
    return sigmoid(margins)


@dataclass(frozen=True)
class TeacherOutput:
    """Per pair: the margin d, the teacher's yes/no answer and its reasoning text.

    `says_yes` is kept apart from `margins > 0` because a reasoning teacher's written answer and
    its margin can disagree (the paper's mining rules name both, see `mining.py`); backends that
    write no answer report `margins > 0`.
    """

    margins: np.ndarray
    says_yes: np.ndarray
    reasonings: list[str]

    @property
    def p_yes(self) -> np.ndarray:
        return p_yes(self.margins)


@runtime_checkable
class Teacher(Protocol):
    """A text relevance judge of (query, evidence) pairs."""

    name: str

    def margins(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        """d = logit(yes) - logit(no) per pair, float64, shape (n,)."""
        ...

    def judge(self, queries: Sequence[str], evidences: Sequence[str]) -> TeacherOutput:
        """Margins plus the written answer and reasoning per pair."""
        ...


class TeacherBase:
    """Shared plumbing: argument checks, p_yes, and a `judge` for backends that write no text."""

    name = "base"

    def margins(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def p_yes(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        return p_yes(self.margins(queries, evidences))

    def judge(self, queries: Sequence[str], evidences: Sequence[str]) -> TeacherOutput:
        d = self.margins(queries, evidences)
        return TeacherOutput(margins=d, says_yes=d > 0, reasonings=[""] * len(d))

    @staticmethod
    def _check_pairs(queries: Sequence[str], evidences: Sequence[str]) -> tuple[list[str], list[str]]:
        if isinstance(queries, str) or isinstance(evidences, str):
            raise TypeError("queries and evidences must be lists of strings, one per pair, not a single string")
        queries, evidences = list(queries), list(evidences)
        if len(queries) != len(evidences):
            raise ValueError(f"{len(queries)} queries but {len(evidences)} evidences: one of each per pair")
        return queries, evidences
