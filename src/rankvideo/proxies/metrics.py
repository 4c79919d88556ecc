"""How close tool-made proxies come to the truth: word error rate of a transcript, and whether
an OCR output contains the on-screen word."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (`Porto,` -> `porto`), as WER is usually scored."""
    return _TOKEN.findall((text or "").lower())


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word lists (substitutions, insertions, deletions cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(S + D + I) / N over normalised words; an empty reference gives 0 for an empty hypothesis
    and 1 otherwise (every word is an insertion)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def corpus_wer(pairs) -> float:
    """WER over a corpus: total edits over total reference words (not a mean of per-clip rates)."""
    edits = total = 0
    for ref, hyp in pairs:
        r = words(ref)
        edits += edit_distance(r, words(hyp))
        total += len(r)
    return edits / total if total else 0.0


def ocr_hit(word: str, ocr_text: str) -> bool:
    """True when `word` appears as a whole word in the OCR output (case-insensitive)."""
    return word.lower() in words(ocr_text)
