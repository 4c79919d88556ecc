"""BM25 first stage over each video's text proxies (metadata + ASR by default), with bm25s.

The paper's first stages (OmniEmbed, MMMORRF, ...) are multimodal; here the first stage is a
lexical one over the text a video ships with, which is what an uploader and a speech recogniser
provide. It finds the event a query names and leaves the visual details to the reranker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import bm25s
import numpy as np

from ..data.benchmark import Query, VideoDoc
from ..data.trec import Run

log = logging.getLogger(__name__)


def bm25_run(
    docs: Sequence[VideoDoc],
    queries: Sequence[Query],
    *,
    fields: Sequence[str] = ("title", "description", "asr"),
    k1: float = 1.5,
    b: float = 0.75,
    method: str = "lucene",
    depth: int = 1000,
    show_progress: bool = True,
) -> Run:
    """Top-`depth` BM25 candidates per query. Documents with a zero score are not returned
    (they share no term with the query, so their order would be arbitrary)."""
    if not docs:
        raise ValueError("bm25_run: the corpus is empty")
    bad = [f for f in fields if f not in VideoDoc.__dataclass_fields__]
    if bad:
        raise ValueError(f"retrieval.fields: unknown field(s) {bad}; a video has {sorted(VideoDoc.__dataclass_fields__)}")
    texts = [d.text(tuple(fields)) for d in docs]
    empty = sum(not t.strip() for t in texts)
    if empty:
        log.warning("%d of %d videos have no text in fields %s: BM25 can never retrieve them", empty, len(docs), list(fields))
    retriever = bm25s.BM25(k1=k1, b=b, method=method)
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    k = min(depth, len(docs))
    q_tokens = bm25s.tokenize([q.text for q in queries], stopwords="en", show_progress=False)
    idx, scores = retriever.retrieve(q_tokens, k=k, show_progress=show_progress, n_threads=1)
    run: Run = {}
    for qi, q in enumerate(queries):
        ranked = {}
        for j, s in zip(idx[qi], scores[qi]):
            if s > 0:
                ranked[docs[int(j)].doc_id] = float(np.float32(s))
        run[q.qid] = ranked
    return run
