"""`data=multivent2`: MultiVENT 2.0 as distributed, converted into a benchmark folder (the same
contract as the embedded benchmark, see `rankvideo.data.benchmark`), so every later stage runs
unchanged.

Inputs (paths in `conf/data/multivent2.yaml`, under `data/` and tracked by `data.dvc`):
- queries CSV `Query_id,query` per split (train; test), judgments JSONL per split (binary train,
  graded 0-3 test); a split may have queries without judgments (they are kept out of evaluation);
- videos in the official reranker's shard layout `<root>/<zfill6(int(id)//100 + 1)>/<id>.mp4` or
  in one folder (`video_layout`: auto | shard | flat); the corpus is every video on disk plus every
  judged video (a judged video missing from disk stays in the qrels, so it counts against recall,
  and is logged);
- optional text features, JSONL `{doc_id, text}`: captions and ASR (what the first stage and the
  teacher read), and OCR (kept in the corpus records as `ocr` when given); the `proxies` stage
  writes all three from the videos (docs/proxies.md).

Validation queries are carved from the train queries with a seeded split (`val_fraction`);
MultiVENT 2.0 has no official validation split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from pathlib import Path
from typing import Mapping

from ..utils.io import atomic_write_text, write_json
from .official import find_video, read_judgments, read_queries_csv, write_queries_tsv
from .trec import iter_jsonl, write_qrels

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv")
# The text-feature files of a proxies folder (the `proxies` stage writes them), by corpus field.
PROXY_FILES = {"caption": "captions.jsonl", "asr": "asr.jsonl", "ocr": "ocr.jsonl"}


def read_text_features(path: str | Path) -> dict[str, str]:
    """JSONL `{doc_id, text}` (captions or ASR); a doc repeated keeps its last text."""
    out: dict[str, str] = {}
    for _, row in iter_jsonl(path, ("doc_id", "text"), "a text feature"):
        out[str(row["doc_id"])] = str(row["text"] or "")
    return out


def videos_on_disk(root: Path) -> dict[str, Path]:
    """doc_id -> file for every video under `root` (one folder or the shard layout)."""
    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
            found.setdefault(p.stem, p)
    return found


def build_multivent(data: Mapping, out_dir: str | Path, *, seed: int) -> dict:
    """Write the benchmark folder for MultiVENT 2.0 into `out_dir`; returns the manifest."""
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos_root = Path(data["videos"])
    if not videos_root.is_dir():
        raise FileNotFoundError(f"data.videos={videos_root}: no such folder (MultiVENT 2.0 videos, shard layout or one folder)")
    queries: dict[str, dict[str, str]] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split in ("train", "test"):
        qpath = (data.get("queries") or {}).get(split)
        if not qpath:
            continue
        queries[split] = read_queries_csv(qpath)
        jpath = (data.get("judgments") or {}).get(split)
        judged = read_judgments(jpath) if jpath else {}
        unknown = sorted(set(judged) - set(queries[split]))
        if unknown:
            log.warning("%s: %d judged query id(s) not in %s, ignored (first: %s)", jpath, len(unknown), qpath, unknown[0])
        qrels[split] = {q: judged[q] for q in queries[split] if q in judged}
        unjudged = [q for q in queries[split] if q not in judged]
        if unjudged:
            log.warning("%s: %d %s queries have no judgments; kept, but not evaluated (first: %s)", qpath, len(unjudged), split,
                        unjudged[0])
    if "train" not in queries:
        raise ValueError("data.queries.train is required (the training queries CSV)")
    # Validation: a seeded share of the train queries (MultiVENT 2.0 has no official val split).
    train_ids = sorted(queries["train"])
    rng = random.Random(seed)
    rng.shuffle(train_ids)
    n_val = int(round(float(data.get("val_fraction", 0.1)) * len(train_ids)))
    val_ids = set(train_ids[:n_val])
    split_of = {q: ("val" if q in val_ids else "train") for q in queries["train"]}
    split_of.update({q: "test" for q in queries.get("test", {})})
    all_qrels = {**qrels.get("train", {}), **qrels.get("test", {})}

    captions = read_text_features(data["captions"]) if data.get("captions") else {}
    asr = read_text_features(data["asr"]) if data.get("asr") else {}
    ocr = read_text_features(data["ocr"]) if data.get("ocr") else None
    layout = str(data.get("video_layout", "auto"))
    on_disk = videos_on_disk(videos_root) if layout != "shard" else {}
    judged_docs = sorted({d for docs in all_qrels.values() for d in docs})
    doc_ids = sorted(set(on_disk) | set(judged_docs))
    missing = []
    records = []
    for doc in doc_ids:
        path = on_disk.get(doc) or find_video(videos_root, doc, layout)
        if path is None:
            missing.append(doc)
            continue
        record = {"doc_id": doc, "video": str(path.resolve()), "caption": captions.get(doc, ""), "asr": asr.get(doc, "")}
        if ocr is not None:  # only when given: corpora converted without OCR keep their bytes
            record["ocr"] = ocr.get(doc, "")
        records.append(record)
    if missing:
        log.warning("%d judged video(s) not on disk under %s: left out of the corpus, still in the qrels (first: %s)",
                    len(missing), videos_root, missing[0])
    if not records:
        raise ValueError(f"no videos found under {videos_root} (layout {layout})")

    atomic_write_text(out / "corpus.jsonl", lambda fh: fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    rows = [{"qid": q, "text": text, "split": split_of[q]} for split in ("train", "test") for q, text in queries.get(split, {}).items()]
    atomic_write_text(out / "queries.jsonl", lambda fh: fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    for split in ("train", "val", "test"):
        write_qrels(out / f"qrels_{split}.trec", {q: d for q, d in all_qrels.items() if split_of.get(q) == split})
        write_queries_tsv(out / f"queries_{split}.tsv", {r["qid"]: r["text"] for r in rows if r["split"] == split})
    write_qrels(out / "qrels.trec", all_qrels)
    h = hashlib.sha256()
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.trec"):
        h.update((out / name).read_bytes())
    counts = {s: sum(1 for r in rows if r["split"] == s) for s in ("train", "val", "test")}
    manifest = {"name": "multivent2", "num_videos": len(records), "num_queries": counts,
                "judged_videos_missing": len(missing), "num_judgments": sum(len(d) for d in all_qrels.values()),
                "sha256": h.hexdigest()}
    write_json(out / "manifest.json", manifest)  # a function of the inputs only (no timings): DVC hashes it
    log.info("multivent2: %d videos (%d judged missing), queries %s -> %s", len(records), len(missing), counts, out)
    return {**manifest, "build_seconds": round(time.time() - t0, 2)}
