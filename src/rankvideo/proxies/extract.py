"""The per-video loop of the `proxies` stage: resumable, one journal record per finished video.

For each video: frames for the captioner and for OCR (read with the project's `read_clip`), the
audio for ASR; the three texts go to `<out>/progress.jsonl` as soon as the video is done (see
`rankvideo.utils.journal`). A run killed at any point and started again with the same config
redoes only the videos that have no complete record; a changed config (backends, their settings,
the captioning model's bytes) starts over. A video that cannot be read is a logged skip with its
reason, counted in `proxies_info.json`; the run goes on.

At the end the files `data=multivent2` reads are written atomically, one `{doc_id, text}` line per
video, sorted by doc id: `captions.jsonl`, `asr.jsonl`, `ocr.jsonl` (only those whose backend is
not `none`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from ..data.multivent import PROXY_FILES
from ..data.video import VideoReadError, read_clip
from ..utils.io import atomic_write_text, progress, tree_fingerprint, write_json
from ..utils.journal import append, open_journal, read_journal
from .asr import make_asr, transcribe_video
from .captioner import make_captioner
from .ocr import make_ocr, ocr_frames

log = logging.getLogger(__name__)

OUTPUT_FILES = PROXY_FILES
JOURNAL = "progress.jsonl"


def proxies_fingerprint(cfg: Mapping, *, pretrained: str | None = None) -> str:
    """What decides every text: the backends and their settings, and the captioning model's bytes
    when it is a local folder."""
    cap = dict(cfg.get("captioner") or {})
    model = cap.get("path") or (pretrained if cap.get("name") == "tiny" else None)
    model_key = tree_fingerprint(model) if model and os.path.isdir(str(model)) else str(model)
    blob = json.dumps({"cfg": {k: cfg.get(k) for k in ("captioner", "asr", "ocr")}, "model": model_key},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def video_key(path: str | os.PathLike) -> str:
    """A video's identity in the journal: its file name and size (a re-downloaded, different file
    is done again)."""
    p = Path(path)
    return f"{p.name}:{p.stat().st_size if p.exists() else -1}"


class Backends:
    """The configured captioner, ASR and OCR, built once (a model load is the slow part)."""

    def __init__(self, cfg: Mapping, *, pretrained: str | None = None) -> None:
        self.cfg = cfg
        self.captioner = make_captioner(cfg.get("captioner") or {"name": "none"}, pretrained=pretrained)
        self.asr = make_asr(cfg.get("asr") or {"name": "none"})
        self.ocr = make_ocr(cfg.get("ocr") or {"name": "none"})

    @property
    def kinds(self) -> list[str]:
        return [k for k, b in (("caption", self.captioner), ("asr", self.asr), ("ocr", self.ocr)) if b is not None]

    def run(self, path: str) -> dict[str, str]:
        """The texts of one video; VideoReadError when it cannot be read."""
        out: dict[str, str] = {}
        if self.captioner is not None:
            c = self.captioner
            clip = read_clip(path, fps=c.fps, max_frames=c.num_frames, sampling=c.sampling)
            out["caption"] = c.caption(clip)
        if self.ocr is not None:
            o = self.cfg["ocr"]
            clip = read_clip(path, fps=float(o.get("fps", 1.0)), max_frames=int(o.get("max_frames", 16)))
            out["ocr"] = ocr_frames(self.ocr, clip.frames, min_chars=int(o.get("min_chars", 2)))
        if self.asr is not None:
            ms = self.cfg["asr"].get("max_seconds")
            out["asr"] = transcribe_video(self.asr, path, max_seconds=float(ms) if ms else None)
        return out


def extract_proxies(videos: Sequence[tuple[str, str]], out_dir: str | os.PathLike, cfg: Mapping, *,
                    pretrained: str | None = None, backends: Backends | None = None) -> dict:
    """Run the configured backends over `videos` (doc_id, path) and write the proxy files into
    `out_dir`; returns the run's summary (also written to `proxies_info.json`, without timings)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backends = backends or Backends(cfg, pretrained=pretrained)
    fingerprint = proxies_fingerprint(cfg, pretrained=pretrained)
    journal = out / JOURNAL
    done: dict[str, dict] = {}
    keys = {doc: video_key(path) for doc, path in videos}
    for _, row in read_journal(journal, fingerprint) or ():
        doc = str(row.get("doc_id"))
        if doc in keys and row.get("video") == keys[doc]:
            done[doc] = row
    resumed = len(done)
    if resumed:
        log.info("resuming: %d of %d videos already done in %s", resumed, len(videos), journal)
    todo = [(d, p) for d, p in videos if d not in done]
    bar = progress(len(videos), "proxies", "video")
    bar.update(resumed)
    with open_journal(journal, fingerprint) as fh:
        for doc, path in todo:
            try:
                row = {"doc_id": doc, "video": keys[doc], **backends.run(str(path))}
            except VideoReadError as e:
                log.warning("%s (%s): skipped, the video cannot be read: %s", doc, path, e)
                row = {"doc_id": doc, "video": keys[doc], "skipped": _reason(e)}
            append(fh, row)
            done[doc] = row
            bar.update()
    bar.close()

    kinds = backends.kinds
    rows = [done[d] for d, _ in sorted(videos)]
    kept = [r for r in rows if "skipped" not in r]
    for kind in kinds:
        texts = [{"doc_id": r["doc_id"], "text": r.get(kind, "")} for r in kept]
        atomic_write_text(out / OUTPUT_FILES[kind],
                          lambda f, texts=texts: f.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in texts))
    skipped = {r["doc_id"]: r["skipped"] for r in rows if "skipped" in r}
    info = {
        "fingerprint": fingerprint,
        "backends": {k: str((cfg.get(k) or {}).get("name", "none")) for k in ("captioner", "asr", "ocr")},
        "files": [OUTPUT_FILES[k] for k in kinds],
        "num_videos": len(videos),
        "num_written": len(kept),
        "num_skipped": len(skipped),
        "skip_reasons": dict(sorted(Counter(_reason_kind(r) for r in skipped.values()).items())),
        "skipped": dict(sorted(skipped.items())),
        "empty": {k: sum(1 for r in kept if not r.get(k)) for k in kinds},
    }
    write_json(out / "proxies_info.json", info)
    seconds = time.perf_counter() - t0
    log.info("proxies: %d videos (%d resumed, %d skipped) in %.1fs -> %s", len(videos), resumed, len(skipped), seconds, out)
    return {**info, "videos_resumed": resumed, "seconds": round(seconds, 2),
            "videos_per_s": round(len(todo) / seconds, 3) if seconds > 0 else None}


def _reason(e: BaseException) -> str:
    return " ".join(str(e).split())[:500]


def _reason_kind(reason: str) -> str:
    """A short class of a skip reason, for counting (`empty file`, `missing`, `undecodable`)."""
    r = reason.lower()
    if "does not exist" in r:
        return "missing"
    if "empty (0 bytes)" in r:
        return "empty file"
    return "undecodable"
