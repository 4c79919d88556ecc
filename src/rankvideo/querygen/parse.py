"""Strict parsing of a generator's answer into one search query, or a counted reason to drop it.

`parse_query(raw, evidence, cfg)` -> (query, None) or (None, reason), reason one of:
- `empty`: nothing left after cleaning;
- `refusal`: the model declined or talked about itself ("I cannot", "As an AI", "I'm sorry"...);
- `chatter`: the model talked to the user instead of answering ("Sure!", "I'm ready to help",
  "Let me know...");
- `repetition`: a decoding loop: a phrase of 2 to 4 words `max_repeats` times or more, or one word
  that many times in a row ("finish line: finish line: finish line");
- `too_short` / `too_long`: fewer than `min_words` or more than `max_words` words (or `max_chars`);
- `copied`: the query is the evidence copied verbatim or near-verbatim: a run of at least
  `copy_fraction` of its words appears contiguously in the evidence, and the query has at least
  `copy_min_words` words or that run is at least `copy_fraction` of the whole evidence;
and `QueryFilter` adds `duplicate`: a query whose normalised words overlap an already kept query's
by at least `dup_jaccard` (Jaccard over word sets; identical queries included).

Cleaning keeps the first non-empty line, removes a leading label ("Query:", "Search query:",
"Here is a search query:", "This is a search query:"), list markers and surrounding quotes or
backticks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DROP_REASONS = ("no_evidence", "empty", "refusal", "chatter", "too_short", "too_long", "repetition", "copied",
                "duplicate")


@dataclass(frozen=True)
class ParseConfig:
    min_words: int = 3
    max_words: int = 32
    max_chars: int = 240
    copy_fraction: float = 0.8
    copy_min_words: int = 6
    dup_jaccard: float = 0.8
    max_repeats: int = 3

    @staticmethod
    def from_mapping(m) -> "ParseConfig":
        m = dict(m or {})
        bad = set(m) - set(ParseConfig.__dataclass_fields__)
        if bad:
            raise ValueError(f"generator.parse: unknown key(s) {sorted(bad)}; known: {sorted(ParseConfig.__dataclass_fields__)}")
        return ParseConfig(**m)


_LABEL = re.compile(
    r"^\s*(?:[-*•]|\d+[.)])?\s*(?:\*\*)?\s*(?:(?:here(?:'s| is)|this is) (?:a |the |one |my )?)?"
    r"(?:(?:short |possible |example |generated |final )?(?:search )?query|answer|output|search)\s*(?:\*\*)?\s*[:\-–]\s*(?:\*\*)?",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_QUOTES = "\"'`“”‘’«»"
_REFUSAL = re.compile(
    r"\b(?:i (?:cannot|can't|can not|am unable|'m unable|won't|will not|do not|don't) |i'm sorry|i am sorry|"
    r"sorry,? (?:but )?i|as an ai|as a language model|language model|i apologi[sz]e|unable to (?:help|assist|comply)|"
    r"not able to (?:help|assist)|cannot (?:help|assist|provide|generate))",
    re.IGNORECASE,
)
_CHATTER = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|absolutely|great|hello|hi)\b|"
    r"\b(?:(?:ready|happy|glad) to (?:help|assist)|let me know|feel free|i hope (?:this|that)|"
    r"how can i (?:help|assist)|what (?:kind of|type of)? ?(?:query|video) (?:would|do) you)",
    re.IGNORECASE,
)
_EDGE_QUOTES = re.compile(f"^[{_QUOTES}]+|[{_QUOTES}]+\\.?$")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits of any script)."""
    return _WORD.findall(text.lower())


def clean(raw: str) -> str:
    """The first non-empty line without labels, list markers and surrounding quotes."""
    lines = [ln.strip() for ln in str(raw or "").replace("\r", "\n").split("\n") if ln.strip()]
    if not lines:
        return ""
    text = lines[0]
    # "Query:" on its own line, the query on the next
    if len(lines) > 1 and _LABEL.sub("", text).strip(" *") == "":
        text = lines[1]
    for _ in range(3):
        new = _LABEL.sub("", text, count=1)
        new = _BULLET.sub("", new, count=1).strip()
        new = new.strip("*").strip()
        new = _EDGE_QUOTES.sub("", new).strip()
        if new == text:
            break
        text = new
    return " ".join(text.split())


def _repeats(w: list[str], times: int) -> bool:
    """A phrase of 2 to 4 words occurring `times` times or more, or one word `times` times in a row."""
    run = 1
    for a, b in zip(w, w[1:]):
        run = run + 1 if a == b else 1
        if run >= times:
            return True
    for n in (2, 3, 4):
        counts: dict[tuple[str, ...], int] = {}
        for i in range(len(w) - n + 1):
            gram = tuple(w[i:i + n])
            counts[gram] = counts.get(gram, 0) + 1
            if counts[gram] >= times:
                return True
    return False


def _longest_run(query: list[str], evidence: list[str]) -> int:
    """Length of the longest contiguous run of `query` words that appears contiguously in `evidence`."""
    best = 0
    prev = [0] * (len(evidence) + 1)
    for q in query:
        cur = [0] * (len(evidence) + 1)
        for j, e in enumerate(evidence, 1):
            if q == e:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def parse_query(raw: str, evidence: str, cfg: ParseConfig = ParseConfig()) -> tuple[str | None, str | None]:
    """(query, None) when `raw` holds an acceptable query, else (None, reason)."""
    text = clean(raw)
    if not text or not words(text):
        return None, "empty"
    if _REFUSAL.search(text):
        return None, "refusal"
    if _CHATTER.search(text):
        return None, "chatter"
    w = words(text)
    if len(w) < cfg.min_words:
        return None, "too_short"
    if len(w) > cfg.max_words or len(text) > cfg.max_chars:
        return None, "too_long"
    if _repeats(w, cfg.max_repeats):
        return None, "repetition"
    ev = words(evidence)
    run = _longest_run(w, ev)
    if run >= cfg.copy_fraction * len(w) and (len(w) >= cfg.copy_min_words or run >= cfg.copy_fraction * len(ev)):
        return None, "copied"
    return text, None


class QueryFilter:
    """Parses answers and drops near-duplicates of the queries it kept, counting every reason."""

    def __init__(self, cfg: ParseConfig = ParseConfig()):
        self.cfg = cfg
        self.kept: list[set[str]] = []
        self.drops: dict[str, int] = {r: 0 for r in DROP_REASONS}

    def duplicate_of(self, text: str) -> bool:
        s = set(words(text))
        return any(len(s & k) / max(1, len(s | k)) >= self.cfg.dup_jaccard for k in self.kept)

    def remember(self, text: str) -> None:
        self.kept.append(set(words(text)))

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def __call__(self, raw: str, evidence: str) -> tuple[str | None, str | None]:
        query, reason = parse_query(raw, evidence, self.cfg)
        if query is not None and self.duplicate_of(query):
            query, reason = None, "duplicate"
        if query is None:
            self.drop(reason)
        else:
            self.remember(query)
        return query, reason
