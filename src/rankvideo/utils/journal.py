"""Append-only JSONL journals of finished work, for jobs that resume after a kill.

A journal's first line is a header `{"fingerprint": ...}` naming the configuration that wrote it;
every later line is one finished record, written whole and flushed. Reading keeps complete records
only: a tail without its newline (cut by a kill while appending) or a damaged line is logged and
left out, so its work is done again. Appending first removes a cut tail, so the next record starts
on its own line; a journal of another configuration is started over. A finished job may replace
its journal with exactly the records it stands by (`rewrite`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Iterable, Iterator

from .io import atomic_write_text

log = logging.getLogger(__name__)


def complete_lines(path: Path) -> tuple[list[str], int]:
    """The file's complete lines (each ended by a newline) and the byte length they span."""
    data = Path(path).read_bytes()
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", errors="replace").splitlines(), end


def _header(lines: list[str]) -> dict:
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        return {}
    return header if isinstance(header, dict) else {}


def read_journal(path: Path, fingerprint: str) -> Iterator[tuple[int, dict]] | None:
    """(line number, record) of every complete record of `path`, or None when the file is absent
    or belongs to another fingerprint (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    lines, end = complete_lines(path)
    size = path.stat().st_size
    if _header(lines).get("fingerprint") != fingerprint:
        log.info("%s belongs to another configuration: not reused", path)
        return None
    if end < size:
        log.warning("%s: its last record was cut by an interruption (%d bytes); that work is done again", path, size - end)

    def records() -> Iterator[tuple[int, dict]]:
        for lineno, line in enumerate(lines[1:], 2):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict):
                log.warning("%s line %d: not a complete record (damaged by an interruption); ignored", path, lineno)
                continue
            yield lineno, row

    return records()


def open_journal(path: Path, fingerprint: str) -> IO[str]:
    """`path` opened for appending records under `fingerprint`: a cut tail is removed first; a file
    of another fingerprint (or none) is started over with the header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = True
    if path.is_file():
        lines, end = complete_lines(path)
        fresh = _header(lines).get("fingerprint") != fingerprint
        if not fresh and end < path.stat().st_size:
            log.warning("%s: removing a record cut by an interruption (%d bytes) before appending",
                        path, path.stat().st_size - end)
            with open(path, "r+b") as f:
                f.truncate(end)
    if fresh:
        path.write_text(_header_line(fingerprint), encoding="utf-8")
    return open(path, "a", encoding="utf-8")


def append(fh: IO[str], record: dict, sync: bool = False) -> None:
    """Write one record as one line and flush it (and fsync it when `sync`)."""
    fh.write(_record_line(record))
    fh.flush()
    if sync:
        os.fsync(fh.fileno())


def rewrite(path: Path, fingerprint: str, records: Iterable[dict]) -> None:
    """Replace `path`, atomically, by a journal of `fingerprint` holding `records` in order: the
    bytes that opening it fresh and appending them would write."""
    def write(fh: IO[str]) -> None:
        fh.write(_header_line(fingerprint))
        for record in records:
            fh.write(_record_line(record))

    atomic_write_text(path, write)


def _header_line(fingerprint: str) -> str:
    return json.dumps({"fingerprint": fingerprint}) + "\n"


def _record_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"
