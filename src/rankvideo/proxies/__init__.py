"""Text proxies of real videos (the paper's section 3.1, step 1): captions from a vision-language
model, speech transcripts, on-screen text. `extract.extract_proxies` runs the three backends over a
folder of videos and writes `captions.jsonl`, `asr.jsonl` and `ocr.jsonl` (`{doc_id, text}`), the
files `data=multivent2` reads (`data.captions`, `data.asr`, `data.ocr`)."""

from __future__ import annotations


class MissingToolError(RuntimeError):
    """An optional tool or package a configured backend needs is not installed; the message names
    the install command."""
