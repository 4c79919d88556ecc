"""Data contracts of a benchmark folder and their readers.

A benchmark folder (built by `rankvideo.data.synthetic.build`, or laid out by a user for real
data) holds `corpus.jsonl`, `queries.jsonl` (or `queries_<split>.tsv`) and `qrels_<split>.trec`.
Readers validate as they go and name the file and line of anything malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .trec import FormatError, Qrels, iter_jsonl, read_qrels


@dataclass(frozen=True)
class VideoDoc:
    """One video of the corpus with its text proxies. `truth` is only set for synthetic data."""

    doc_id: str
    video: str  # path relative to the benchmark folder, or absolute
    title: str = ""
    description: str = ""
    asr: str = ""
    ocr: str = ""
    caption: str = ""
    event_id: str | None = None
    truth: dict | None = None

    def text(self, fields: tuple[str, ...]) -> str:
        """The concatenation of the given text fields, as the first stage indexes it."""
        return " ".join(getattr(self, f) for f in fields if getattr(self, f))


@dataclass(frozen=True)
class Query:
    qid: str
    text: str
    split: str
    variant: str | None = None
    qtype: str | None = None


_DOC_FIELDS = {f for f in VideoDoc.__dataclass_fields__}


class Benchmark:
    """Read access to a benchmark folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "corpus.jsonl").exists():
            raise FileNotFoundError(
                f"{self.root}: no corpus.jsonl here. Build the embedded benchmark with "
                "`python src/synthesize.py` (or `dvc repro synthesize`), or point paths.benchmark at a benchmark folder."
            )

    def corpus(self) -> list[VideoDoc]:
        path = self.root / "corpus.jsonl"
        docs, seen = [], {}
        for lineno, row in iter_jsonl(path):
            if "doc_id" not in row or "video" not in row:
                raise FormatError(path, "a corpus record needs 'doc_id' and 'video'", line=lineno)
            doc_id = str(row["doc_id"])
            if doc_id in seen:
                raise FormatError(path, f"doc_id {doc_id!r} repeats line {seen[doc_id]}", line=lineno)
            seen[doc_id] = lineno
            docs.append(VideoDoc(**{k: v for k, v in row.items() if k in _DOC_FIELDS}))
        return docs

    def video_path(self, doc: VideoDoc) -> Path:
        p = Path(doc.video)
        return p if p.is_absolute() else self.root / p

    def queries(self, split: str | None = None) -> list[Query]:
        """Queries of one split (all splits when `split` is None), in file order."""
        path = self.root / "queries.jsonl"
        out = []
        if path.exists():
            for lineno, row in iter_jsonl(path):
                if "qid" not in row or "text" not in row or "split" not in row:
                    raise FormatError(path, "a query record needs 'qid', 'text' and 'split'", line=lineno)
                if split is None or row["split"] == split:
                    out.append(Query(str(row["qid"]), row["text"], row["split"], row.get("variant"), row.get("qtype")))
            return out
        splits = [split] if split else ["train", "val", "test"]
        for s in splits:
            tsv = self.root / f"queries_{s}.tsv"
            if not tsv.exists():
                continue
            with open(tsv, encoding="utf-8-sig") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    parts = line.rstrip("\n").split("\t", 1)
                    if len(parts) != 2:
                        raise FormatError(tsv, "expected 'qid<TAB>text'", line=lineno)
                    out.append(Query(parts[0], parts[1], s))
        if not out:
            raise FileNotFoundError(f"{self.root}: no queries for split {split!r} (queries.jsonl or queries_{split}.tsv)")
        return out

    def qrels_path(self, split: str | None = None) -> Path:
        return self.root / (f"qrels_{split}.trec" if split else "qrels.trec")

    def qrels(self, split: str | None = None) -> Qrels:
        return read_qrels(self.qrels_path(split))

    def manifest(self) -> dict:
        p = self.root / "manifest.json"
        return json.loads(p.read_text()) if p.exists() else {}
