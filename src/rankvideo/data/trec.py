"""Run and qrels files: TREC text formats and the official RankVideo JSON run format.

Ranking convention (used everywhere in the project, see :func:`rank_order`):
score descending, then a tie-break score descending (officially the first-stage
score), then doc id descending by string comparison. The last rule is what
trec_eval does (its qsort compares ``strcmp(b, a)`` on equal scores), so any run
without a tie-break run is ordered exactly as trec_eval orders it, and the
project reproduces trec_eval's numbers even when a run contains score ties.

The rank column of a TREC run is ignored on reading, as trec_eval ignores it:
only scores carry order. When a tie-break run decides an order that trec_eval
would not see, write the run with ``strict=True`` (or evaluate through
:func:`strictly_ordered`) so that third-party evaluators see the same order.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

from rankvideo.utils.io import atomic_write_text

__all__ = [
    "Run",
    "Qrels",
    "FormatError",
    "read_trec_run",
    "write_trec_run",
    "read_qrels",
    "write_qrels",
    "read_json_run",
    "write_json_run",
    "read_run",
    "rank_order",
    "strictly_ordered",
]

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

PathLike = str | os.PathLike


class FormatError(ValueError):
    """A run or qrels file that cannot be read.

    The message always names the file, then the 1-based line number (or the JSON
    key path) and what is wrong, so that a user can open the file at the spot.
    The pieces are also kept as attributes for programmatic use.
    """

    def __init__(self, path: PathLike, problem: str, *, line: int | None = None,
                 key: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.key = key
        self.problem = problem
        where = self.path
        if line is not None:
            where += f", line {line}"
        if key is not None:
            where += f", key {key}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        # Rebuilt from its parts, so it crosses a process boundary (pickle) whole.
        return _rebuild_format_error, (type(self), self.path, self.problem, self.line, self.key)


def _rebuild_format_error(cls, path, problem, line, key):
    return cls(path, problem, line=line, key=key)


def iter_jsonl(path: PathLike, required: Iterable[str] = (), what: str = "a line"):
    """(line number, object) for each non-blank line of a JSONL file. A line that is not JSON,
    not an object, or lacks a `required` key raises FormatError naming the file and the line."""
    required = tuple(required)
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise FormatError(path, f"not valid JSON ({e.msg})", line=lineno) from None
            if not isinstance(row, dict):
                raise FormatError(path, "expected a JSON object", line=lineno)
            missing = [k for k in required if k not in row]
            if missing:
                raise FormatError(path, f"{what} needs {', '.join(repr(k) for k in missing)}", line=lineno)
            yield lineno, row


# ---------------------------------------------------------------------------
# ranking convention


def _check_finite(value: float, what: str) -> float:
    value = float(value)
    # NaN would make the sort order depend on input order; inf cannot be written
    # back losslessly by every tool. Both are bugs upstream, so stop here.
    if not math.isfinite(value):
        raise ValueError(f"non-finite score {value!r} for {what}")
    return value


def rank_order(scores: Mapping[str, float],
               tiebreak: Mapping[str, float] | None = None) -> list[str]:
    """Doc ids of one query in the project's canonical order.

    Score descending; equal scores by ``tiebreak`` score descending (docs absent
    from ``tiebreak`` after those present); remaining ties by doc id descending
    (string comparison), exactly as trec_eval breaks ties. Python compares str by
    code point, which for UTF-8 text is the same order as C's strcmp on bytes.
    """
    for doc, s in scores.items():
        _check_finite(s, f"doc {doc!r}")
    tb = tiebreak or {}
    # Two stable sorts: first the last-resort key (doc id descending), then the
    # primary keys; stability keeps the doc id order among full ties.
    docs = sorted(scores, reverse=True)

    def key(doc: str) -> tuple[float, int, float]:
        if doc in tb:
            return (-float(scores[doc]), 0, -_check_finite(tb[doc], f"tie-break doc {doc!r}"))
        return (-float(scores[doc]), 1, 0.0)

    docs.sort(key=key)
    return docs


def strictly_ordered(run: Mapping[str, Mapping[str, float]],
                     tiebreak_run: Mapping[str, Mapping[str, float]] | None = None) -> Run:
    """The same per-query order as :func:`rank_order`, with scores N - rank.

    Evaluators disagree on ties (trec_eval/pytrec_eval: doc id descending;
    ir-measures' MS MARCO RR backend: doc id ascending), so handing them strictly
    decreasing scores makes every one of them see the intended order.
    """
    tiebreak_run = tiebreak_run or {}
    out: Run = {}
    for qid, scores in run.items():
        values = list(scores.values())
        if len(set(values)) == len(values) and all(map(math.isfinite, values)):
            order = sorted(scores, key=scores.__getitem__, reverse=True)  # no ties: the scores decide alone
        else:
            order = rank_order(scores, tiebreak_run.get(qid))
        n = len(order)
        out[qid] = {doc: float(n - i) for i, doc in enumerate(order)}
    return out


def _check_id(value: str, what: str) -> str:
    # Ids are written into whitespace-separated columns: whitespace or an empty
    # id would silently shift columns for every later reader.
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"{what} {value!r} must be a non-empty string without whitespace")
    return value


# ---------------------------------------------------------------------------
# TREC run


def _iter_lines(path: PathLike) -> Iterable[tuple[int, list[str]]]:
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            cols = line.split()
            if cols:  # blank lines carry nothing; trec_eval skips them too
                yield lineno, cols


def _read_pairs_fast(path: PathLike, width: int, value_col: int, cast, check=None) -> dict[str, dict] | None:
    """The whole file read in one pass with no per-line validation beyond the column count, then
    checked in bulk (no pair twice, every value castable and passing `check`); None at the first
    problem, so the careful reader can say which line is wrong."""
    raw: dict[str, dict[str, str]] = {}
    lines = 0
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            cols = line.split()
            if not cols:
                continue
            if len(cols) < width:
                return None
            docs = raw.get(cols[0])
            if docs is None:
                docs = raw[cols[0]] = {}
            docs[cols[2]] = cols[value_col]
            lines += 1
    if sum(map(len, raw.values())) != lines:  # a pair seen twice
        return None
    out: dict[str, dict] = {}
    try:
        for qid, docs in raw.items():
            values = list(map(cast, docs.values()))
            if check is not None and not all(map(check, values)):
                return None
            out[qid] = dict(zip(docs, values))
    except ValueError:
        return None
    return out


def _read_pairs(path: PathLike, layout: str, value_col: int, parse, what: str, *, cast=None, check=None
                ) -> dict[str, dict]:
    """Shared reader of TREC run and qrels lines: qid in column 0, doc id in column 2, the value
    in `value_col`; at least as many columns as `layout` names (extra trailing columns tolerated,
    as trec_eval does). A (qid, doc) pair seen twice is an error naming both lines: trec_eval
    refuses it too, and keeping one would make the result depend on file order.

    With `cast` (and `check`), a well-formed file is read by the bulk reader; any problem sends
    the file through the line-by-line reader below, whose `parse` names the file and the line."""
    width = len(layout.split())
    if cast is not None:
        fast = _read_pairs_fast(path, width, value_col, cast, check)
        if fast is not None:
            return fast
    out: dict[str, dict] = {}
    first_seen: dict[tuple[str, str], int] = {}
    for lineno, cols in _iter_lines(path):
        if len(cols) < width:
            raise FormatError(path, f"expected at least {width} columns ({layout}), found {len(cols)}", line=lineno)
        qid, doc = cols[0], cols[2]
        value = parse(cols[value_col], lineno)
        pair = (qid, doc)
        if pair in first_seen:
            raise FormatError(path, f"query {qid!r} doc {doc!r} {what} twice "
                              f"(lines {first_seen[pair]} and {lineno})", line=lineno)
        first_seen[pair] = lineno
        out.setdefault(qid, {})[doc] = value
    return out


def read_trec_run(path: PathLike) -> Run:
    """Read ``qid Q0 docid rank score tag`` lines (whitespace separated).

    Extra trailing columns are tolerated, as trec_eval tolerates them. The rank
    column is ignored (trec_eval orders by score only). A (qid, doc) pair seen
    twice is an error, as in trec_eval, naming both lines.
    """

    def score(text: str, lineno: int) -> float:
        try:
            value = float(text)
        except ValueError:
            raise FormatError(path, f"score {text!r} is not a number", line=lineno) from None
        if not math.isfinite(value):
            raise FormatError(path, f"score {text!r} is not finite", line=lineno)
        return value

    return _read_pairs(path, "qid Q0 docid rank score tag", 4, score, "appears", cast=float, check=math.isfinite)


def _format_score(score: float) -> str:
    # repr gives the shortest text that parses back to the same double, so a
    # written run re-reads bit-exact (trec_eval's atof reads it the same way).
    return repr(float(score))


def write_trec_run(path: PathLike, run: Mapping[str, Mapping[str, float]], tag: str = "rankvideo",
                   depth: int | None = None,
                   tiebreak: Mapping[str, Mapping[str, float]] | None = None,
                   strict: bool = False) -> None:
    """Write a TREC run in canonical order (:func:`rank_order`), ranks 1...

    ``depth`` keeps the top ``depth`` docs of each query. ``tiebreak`` is a run
    (e.g. the first-stage run) used to order equal scores. Scores are written
    as given, so tools that ignore the rank column (trec_eval does) order equal
    scores by doc id descending; pass ``strict=True`` to write N - rank instead
    so every tool sees the tie-broken order. A warning is logged when the
    tie-break changes an order that would otherwise be invisible in the file.
    """
    _check_id(tag, "tag")
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be >= 1 or None, got {depth}")
    tiebreak = tiebreak or {}
    lines: list[str] = []
    invisible = 0
    for qid, scores in run.items():
        _check_id(qid, "query id")
        order = rank_order(scores, tiebreak.get(qid))
        if depth is not None:
            order = order[:depth]
        if strict:
            n = len(order)
            shown = {doc: float(n - i) for i, doc in enumerate(order)}
        else:
            shown = {doc: float(scores[doc]) for doc in order}
            if tiebreak.get(qid) and rank_order(shown) != order:
                invisible += 1
        for rank, doc in enumerate(order, start=1):
            _check_id(doc, "doc id")
            lines.append(f"{qid} Q0 {doc} {rank} {_format_score(shown[doc])} {tag}\n")
    if invisible:
        logger.warning("%s: tie-break decides the order of %d queries but equal scores are "
                       "written; tools that ignore the rank column will order them by doc id. "
                       "Use strict=True to write strictly decreasing scores.", path, invisible)
    atomic_write_text(path, lambda fh: fh.writelines(lines))


# ---------------------------------------------------------------------------
# qrels


def read_qrels(path: PathLike) -> Qrels:
    """Read ``qid iter docid rel`` lines (extra trailing columns tolerated).

    Labels are kept as given, negative ones included: trec_eval treats a label
    <= 0 as non-relevant (and < 0 as judged-but-unjudged), which evaluators
    reproduce only if they see the original value.
    """

    def label(text: str, lineno: int) -> int:
        try:
            return int(text)
        except ValueError:
            raise FormatError(path, f"relevance {text!r} is not an integer", line=lineno) from None

    return _read_pairs(path, "qid iter docid rel", 3, label, "judged", cast=int)


def write_qrels(path: PathLike, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write TREC qrels (``qid 0 docid rel``) atomically, in the mapping's order."""
    lines: list[str] = []
    for qid, docs in qrels.items():
        _check_id(qid, "query id")
        for doc, rel in docs.items():
            _check_id(doc, "doc id")
            if isinstance(rel, bool) or int(rel) != rel:
                raise ValueError(f"relevance {rel!r} of query {qid!r} doc {doc!r} is not an integer")
            lines.append(f"{qid} 0 {doc} {int(rel)}\n")
    atomic_write_text(path, lambda fh: fh.writelines(lines))


# ---------------------------------------------------------------------------
# JSON run (official RankVideo first-stage format: {qid: {doc_id: score}})


def read_json_run(path: PathLike) -> Run:
    """Read a ``{qid: {doc_id: score}}`` JSON run, validating every value."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"invalid JSON: {exc.msg} (column {exc.colno})",
                          line=exc.lineno) from None
    if not isinstance(data, dict):
        raise FormatError(path, f"top level must be an object {{qid: {{doc_id: score}}}}, "
                          f"found {type(data).__name__}")
    run: Run = {}
    for qid, docs in data.items():
        if not isinstance(docs, dict):
            raise FormatError(path, f"value must be an object {{doc_id: score}}, "
                              f"found {type(docs).__name__}", key=json.dumps([qid]))
        scores: dict[str, float] = {}
        for doc, score in docs.items():
            keypath = json.dumps([qid, doc])
            # bool is an int subclass in Python but never a meaningful score.
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise FormatError(path, f"score must be a number, found {type(score).__name__} "
                                  f"{score!r}", key=keypath)
            if not math.isfinite(score):  # Python's json accepts NaN/Infinity
                raise FormatError(path, f"score {score!r} is not finite", key=keypath)
            scores[doc] = float(score)
        run[qid] = scores
    return run


def write_json_run(path: PathLike, run: Mapping[str, Mapping[str, float]]) -> None:
    """Write a ``{qid: {doc_id: score}}`` JSON run atomically (scores repr-exact)."""
    data = {str(qid): {str(doc): _check_finite(s, f"query {qid!r} doc {doc!r}")
                       for doc, s in docs.items()}
            for qid, docs in run.items()}

    def write(fh) -> None:
        # allow_nan=False: NaN/Infinity are not JSON and other readers reject them.
        json.dump(data, fh, allow_nan=False, indent=1)
        fh.write("\n")

    atomic_write_text(path, write)


def read_run(path: PathLike) -> Run:
    """Read a run by extension: ``.json`` -> JSON run, anything else -> TREC run."""
    if Path(path).suffix.lower() == ".json":
        return read_json_run(path)
    return read_trec_run(path)
