"""MultiVENT 2.0 as distributed and the official RankVideo release formats, read and written.

- queries CSV `Query_id,query` (MultiVENT 2.0) and queries TSV `qid<TAB>text` (RankVideo);
- judgments JSONL `{"query_id", "doc_id", "relevance"}` (binary for train, graded 0-3 for test);
- `videos2queries` JSON `{doc_id: [qid, ...]}`: which queries score each video (the grouping the
  reranker uses to decode a video once);
- training records JSONL, one stage-2 pair per line: `query_id, query, doc_id, videos,
  true_label, teacher_p_yes, evidence {caption, asr}, teacher_reasoning`;
- the official reranker's video layout `<root>/<zfill6(int(id) // 100 + 1)>/<id>.mp4`, or one folder.

First-stage runs `{qid: {doc_id: score}}` and TREC runs/qrels live in `rankvideo.data.trec`.
Every reader names the file and the line (or JSON key) of anything malformed.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..utils.io import PathLike, atomic_write_text
from .trec import FormatError, Qrels, Run, iter_jsonl, rank_order, read_qrels, write_json_run, write_trec_run

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# queries


def read_queries_csv(path: PathLike) -> dict[str, str]:
    """MultiVENT 2.0 queries: a CSV with the header `Query_id,query` (quoted fields allowed)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["Query_id", "query"]:
            raise FormatError(path, f"expected the header 'Query_id,query', found {header!r}", line=1)
        for row in reader:
            lineno = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) < 2:
                raise FormatError(path, "expected 'Query_id,query'", line=lineno)
            qid, text = row[0].strip(), row[1].strip()
            if not qid or not text:
                raise FormatError(path, "empty query id or text", line=lineno)
            if qid in out:
                raise FormatError(path, f"query id {qid!r} repeats", line=lineno)
            out[qid] = text
    return out


def read_queries_tsv(path: PathLike) -> dict[str, str]:
    """RankVideo queries: `qid<TAB>text` per line."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t", 1)
            if len(parts) != 2 or not parts[0] or not parts[1].strip():
                raise FormatError(path, "expected 'qid<TAB>text'", line=lineno)
            if parts[0] in out:
                raise FormatError(path, f"query id {parts[0]!r} repeats", line=lineno)
            out[parts[0]] = parts[1]
    return out


def write_queries_tsv(path: PathLike, queries: Mapping[str, str]) -> None:
    for qid, text in queries.items():
        if "\t" in qid or "\n" in qid or "\t" in text or "\n" in text:
            raise ValueError(f"query {qid!r}: a tab or newline cannot be written to a queries TSV")
    atomic_write_text(path, lambda fh: fh.writelines(f"{q}\t{t}\n" for q, t in queries.items()))


# ---------------------------------------------------------------------------
# judgments


def read_judgments(path: PathLike) -> Qrels:
    """MultiVENT judgments JSONL `{"query_id", "doc_id", "relevance"}` as qrels. A pair judged
    twice with the same label counts once (logged); with two labels it is an error."""
    qrels: Qrels = {}
    repeats: list[int] = []
    for lineno, row in iter_jsonl(path, ("query_id", "doc_id", "relevance"), "a judgment"):
        rel = row["relevance"]
        if isinstance(rel, bool) or not isinstance(rel, (int, float, str)):
            raise FormatError(path, f"relevance {rel!r} is not an integer", line=lineno)
        try:
            value = int(rel) if not isinstance(rel, float) else rel
        except ValueError:
            raise FormatError(path, f"relevance {rel!r} is not an integer", line=lineno) from None
        if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
            raise FormatError(path, f"relevance {rel!r} is not an integer", line=lineno)
        qid, doc = str(row["query_id"]), str(row["doc_id"])
        if doc in qrels.get(qid, {}):
            if qrels[qid][doc] != int(value):
                raise FormatError(path, f"query {qid!r} judges doc {doc!r} twice, {qrels[qid][doc]} and {int(value)}",
                                  line=lineno)
            repeats.append(lineno)  # the released train judgments repeat two lines verbatim
            continue
        qrels.setdefault(qid, {})[doc] = int(value)
    if repeats:
        log.warning("%s: %d judgment(s) repeated with the same label, counted once (lines %s)", path, len(repeats),
                    ", ".join(map(str, repeats[:10])))
    return qrels


def write_judgments(path: PathLike, qrels: Mapping[str, Mapping[str, int]]) -> None:
    lines = [json.dumps({"query_id": q, "doc_id": d, "relevance": int(r)}) + "\n" for q, docs in qrels.items()
             for d, r in docs.items()]
    atomic_write_text(path, lambda fh: fh.writelines(lines))


def read_qrels_any(path: PathLike) -> Qrels:
    """Qrels by extension: `.jsonl` -> MultiVENT judgments, anything else -> TREC qrels."""
    return read_judgments(path) if Path(path).suffix.lower() == ".jsonl" else read_qrels(path)


# ---------------------------------------------------------------------------
# videos2queries


def read_videos2queries(path: PathLike) -> dict[str, list[str]]:
    with open(path, encoding="utf-8-sig") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as e:
            raise FormatError(path, f"invalid JSON: {e.msg}", line=e.lineno) from None
    if not isinstance(data, dict):
        raise FormatError(path, "top level must be an object {doc_id: [qid, ...]}")
    out = {}
    for doc, qids in data.items():
        if not isinstance(qids, list) or not all(isinstance(q, (str, int)) and not isinstance(q, bool) for q in qids):
            raise FormatError(path, "value must be a list of query ids", key=json.dumps([doc]))
        out[str(doc)] = [str(q) for q in qids]
    return out


def write_videos2queries(path: PathLike, mapping: Mapping[str, Iterable[str]]) -> None:
    data = {str(d): [str(q) for q in qs] for d, qs in mapping.items()}
    atomic_write_text(path, lambda fh: fh.write(json.dumps(data, indent=1) + "\n"))


def videos2queries_from_run(run: Run, depth: int) -> dict[str, list[str]]:
    """The videos of every query's top `depth` (ranked as everywhere in the project) with the
    queries that retrieved them, videos and queries in sorted order."""
    out: dict[str, list[str]] = {}
    for qid in sorted(run):
        for doc in rank_order(run[qid])[:depth]:
            out.setdefault(doc, []).append(qid)
    return {d: sorted(out[d]) for d in sorted(out)}


# ---------------------------------------------------------------------------
# training records


@dataclass(frozen=True)
class TrainingRecord:
    """One stage-2 pair as the official training data writes it. `teacher_p_yes` < 0: no label."""

    query_id: str
    query: str
    doc_id: str
    videos: list[str]
    true_label: int
    teacher_p_yes: float = -1.0
    evidence: dict = field(default_factory=dict)
    teacher_reasoning: str = ""


_REQUIRED = ("query_id", "query", "doc_id", "true_label")


def read_training_records(path: PathLike) -> list[TrainingRecord]:
    out = []
    for lineno, row in iter_jsonl(path, _REQUIRED, "a training record"):
        if row["true_label"] not in (0, 1) or isinstance(row["true_label"], bool):
            raise FormatError(path, f"true_label must be 0 or 1, found {row['true_label']!r}", line=lineno)
        p = row.get("teacher_p_yes", -1.0)
        if p is None:
            p = -1.0
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (p < 0 or 0.0 <= p <= 1.0):
            raise FormatError(path, f"teacher_p_yes must be in [0, 1] (or < 0 for none), found {p!r}", line=lineno)
        evidence = row.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise FormatError(path, "evidence must be an object {caption, asr}", line=lineno)
        videos = row.get("videos") or [str(row["doc_id"])]
        out.append(TrainingRecord(str(row["query_id"]), str(row["query"]), str(row["doc_id"]), [str(v) for v in videos],
                                  int(row["true_label"]), float(p), evidence, str(row.get("teacher_reasoning") or "")))
    return out


def write_training_records(path: PathLike, records: Iterable[TrainingRecord]) -> None:
    lines = [json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records]
    atomic_write_text(path, lambda fh: fh.writelines(lines))


# ---------------------------------------------------------------------------
# video files


def shard_path(root: PathLike, doc_id: str) -> Path:
    """The official reranker's layout: `<root>/<zfill6(int(id) // 100 + 1)>/<id>.mp4` (numeric ids)."""
    try:
        n = int(doc_id)
    except ValueError:
        raise ValueError(f"doc id {doc_id!r} is not numeric: the shard layout needs numeric ids "
                         "(use data.video_layout=flat)") from None
    return Path(root) / str(n // 100 + 1).zfill(6) / f"{doc_id}.mp4"


def find_video(root: PathLike, doc_id: str, layout: str = "auto", suffixes: tuple[str, ...] = (".mp4", ".webm", ".mkv")) -> Path | None:
    """The video file of `doc_id` under `root`, or None when it is not on disk.
    `layout`: `shard` (official), `flat` (`<root>/<id>.<ext>`) or `auto` (shard, then flat)."""
    if layout not in ("auto", "shard", "flat"):
        raise ValueError(f"video layout {layout!r}: expected auto | shard | flat")
    candidates: list[Path] = []
    if layout in ("auto", "shard") and doc_id.isdigit():
        candidates.append(shard_path(root, doc_id))
    elif layout == "shard":
        shard_path(root, doc_id)  # raises the clear error
    if layout in ("auto", "flat"):
        candidates += [Path(root) / f"{doc_id}{s}" for s in suffixes]
    return next((p for p in candidates if p.is_file()), None)


# ---------------------------------------------------------------------------
# submission export


SUBMISSION_FORMATS = ("trec", "json")


def export_submission(run: Run, queries: Iterable[str], path: PathLike, *, fmt: str = "trec",
                      depth: int = 1000, tag: str = "rankvideo",
                      tiebreak: Run | None = None, allow_missing: bool = False) -> dict:
    """Write a reranked run as a leaderboard submission and return a summary.

    A submission ranks every query of the test set once: each query of `queries` gets its top
    `depth` documents in the project's ranking order (score, then `tiebreak`'s score, then doc
    id), written with strictly decreasing scores (N - rank) so that any evaluator, whether it
    reads the rank column or the score, sees the same order. `fmt`: "trec" (`qid Q0 doc rank
    score tag`, what the MAGMaR / MultiVENT 2.0 evaluation reads) or "json" (the official
    `{qid: {doc_id: score}}`). A query of `queries` missing from the run is an error (a logged
    skip with `allow_missing=True`); a query of the run not in `queries` is an error.
    """
    if fmt not in SUBMISSION_FORMATS:
        raise ValueError(f"unknown submission format {fmt!r}; choose one of {', '.join(SUBMISSION_FORMATS)}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    wanted = list(dict.fromkeys(str(q) for q in queries))
    if not wanted:
        raise ValueError("export_submission: the query list is empty")
    extra = sorted(set(run) - set(wanted))
    if extra:
        raise ValueError(f"the run ranks {len(extra)} queries that are not in the query list "
                         f"(first: {', '.join(extra[:5])}); is it the run of another split?")
    missing = [q for q in wanted if not run.get(q)]
    if missing:
        msg = (f"{len(missing)} of {len(wanted)} queries have no ranking in the run "
               f"(first: {', '.join(missing[:5])})")
        if not allow_missing:
            raise ValueError(msg + "; pass allow_missing to submit without them")
        log.warning("%s; submitted without them", msg)
    tiebreak = tiebreak or {}
    ranked: dict[str, dict[str, float]] = {}
    for qid in wanted:
        if not run.get(qid):
            continue
        order = rank_order(run[qid], tiebreak.get(qid))[:depth]
        ranked[qid] = {doc: float(len(order) - i) for i, doc in enumerate(order)}
    if fmt == "json":
        write_json_run(path, ranked)
    else:
        write_trec_run(path, ranked, tag=tag)
    return {"path": str(path), "format": fmt, "queries": len(ranked), "missing": len(missing),
            "lines": sum(len(d) for d in ranked.values()), "depth": depth, "tag": tag}
