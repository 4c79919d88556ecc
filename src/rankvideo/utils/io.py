"""Atomic file writing: a reader, or a crash, never sees a half-written output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

PathLike = str | os.PathLike


def atomic_write_text(path: PathLike, write: Callable[[object], None]) -> None:
    """Write a text file via a temp file in the same folder and os.replace.

    A reader (or a crash) never sees a half-written run. The temp file is made
    with os.open and mode 0o666 so the process umask applies, as for a normal
    open(); tempfile would leave the result readable by the owner only.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextlib.contextmanager
def atomic_dir(out: PathLike):
    """Yield a hidden temporary folder beside `out`; when the block ends without error it replaces
    `out` (the old folder is removed first), otherwise it is deleted. A reader never sees a
    half-written folder under `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex}.tmp"
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_sha256(path: PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resumable_checkpoint(ckpt_dir: PathLike) -> str | None:
    """The checkpoint an interrupted training resumes from: `last.ckpt`, else the newest other
    `*.ckpt`; None when there is none. A damaged file (not a whole torch zip archive, e.g. cut by a
    full disk) is logged and renamed `*.damaged`, never loaded."""
    import logging
    import zipfile

    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    others = sorted((p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt"), key=lambda p: p.stat().st_mtime,
                    reverse=True)
    for path in [ckpt_dir / "last.ckpt", *others]:
        if not path.is_file():
            continue
        if zipfile.is_zipfile(path):
            return str(path)
        logging.getLogger(__name__).warning("%s is damaged (not a complete checkpoint archive): renamed %s.damaged, "
                                            "not resumed from", path, path.name)
        os.replace(path, path.with_name(path.name + ".damaged"))
    return None


def write_json(path: PathLike, obj: Any) -> None:
    """Pretty, key-sorted JSON written atomically (stable bytes for DVC hashes and diffs)."""
    atomic_write_text(path, lambda fh: fh.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def progress(total: int, desc: str, unit: str):
    """A tqdm bar that redraws ten times a second on a terminal but only every few seconds in a
    log file (DVC, CI), where each redraw is a new line of noise."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, mininterval=0.1 if sys.stderr.isatty() else 5.0)


def tree_fingerprint(folder: PathLike, big: int = 256 * 2**20) -> str:
    """Content hash of a folder (or file): relative names, sizes and bytes; files over `big` bytes
    count by name and size only, so an 8B checkpoint is not read for a cache key."""
    folder = Path(folder)
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(folder) if folder.is_dir() else p.name}:{size}\n".encode())
        if size <= big:
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def absolute_sqlite_url(url: str) -> str:
    """`sqlite:///relative/x.db` -> `sqlite:////abs/path/x.db` (folder created), so every process
    and every working directory hits the same file; other URLs unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix):].startswith("/"):
        path = Path(url[len(prefix):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return url
