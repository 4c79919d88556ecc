"""The five evidence variants of the paper (section 3.2) built from a video's text proxies.

A video's proxies come from the benchmark's `corpus.jsonl` (its `caption`, `asr`, `ocr`, `title`
and `description` fields) or from a proxies folder holding `captions.jsonl`, `asr.jsonl` and
`ocr.jsonl`, each JSONL `{doc_id, text}` as `data=multivent2` reads captions and transcripts; a
file of the folder that is absent leaves that proxy empty. The folder's texts replace the
corpus's for the videos they name.

Variants: `caption` (the caption only), `asr` (the speech transcript only), `ocr` (the on-screen
text only), `metadata` (title and description), `all` (every non-empty proxy, labelled). A variant
whose text is empty for a video has no evidence there: the generator is not asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("caption", "asr", "ocr", "metadata", "all")

# What the prompt calls each variant's source.
SOURCE_NAMES = {
    "caption": "a description of its frames",
    "asr": "a transcript of its speech",
    "ocr": "the text written on screen",
    "metadata": "its title and description",
    "all": "everything known about it",
}


@dataclass(frozen=True)
class Proxies:
    doc_id: str
    caption: str = ""
    asr: str = ""
    ocr: str = ""
    title: str = ""
    description: str = ""


def _clean(text) -> str:
    return " ".join(str(text or "").split())


def evidence_text(p: Proxies, variant: str) -> str:
    """The evidence a query writer sees under `variant`; '' when the video has none."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown evidence variant {variant!r}; expected one of {list(VARIANTS)}")
    caption, asr, ocr = _clean(p.caption), _clean(p.asr), _clean(p.ocr)
    title, desc = _clean(p.title), _clean(p.description)
    if variant == "caption":
        return caption
    if variant == "asr":
        return asr
    if variant == "ocr":
        return ocr
    if variant == "metadata":
        return "\n".join(x for x in (f"Title: {title}" if title else "", f"Description: {desc}" if desc else "") if x)
    parts = [("Title", title), ("Description", desc), ("Caption", caption), ("Speech", asr), ("On-screen text", ocr)]
    return "\n".join(f"{name}: {text}" for name, text in parts if text)


def load_proxies(corpus: list, proxies_dir: str | Path | None = None) -> dict[str, Proxies]:
    """doc_id -> Proxies for every video of `corpus` (VideoDoc records), with the texts of
    `proxies_dir` (captions.jsonl / asr.jsonl / ocr.jsonl) in place of the corpus's."""
    from ..data.multivent import PROXY_FILES, read_text_features

    extra: dict[str, dict[str, str]] = {}
    if proxies_dir is not None:
        folder = Path(proxies_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"proxies folder {folder}: no such folder (captions.jsonl, asr.jsonl, ocr.jsonl)")
        found = False
        for field, name in PROXY_FILES.items():
            if (folder / name).is_file():
                found = True
                for doc, text in read_text_features(folder / name).items():
                    extra.setdefault(doc, {})[field] = text
        if not found:
            raise FileNotFoundError(f"proxies folder {folder} holds none of {', '.join(PROXY_FILES.values())}")
    out = {}
    for d in corpus:
        fields = {f: getattr(d, f, "") or "" for f in ("caption", "asr", "ocr", "title", "description")}
        fields.update(extra.get(d.doc_id, {}))
        out[d.doc_id] = Proxies(doc_id=d.doc_id, **fields)
    return out
