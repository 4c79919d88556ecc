"""Build the embedded benchmark: videos, text proxies, queries, graded qrels and splits.

Everything is a deterministic function of the config and the seed: each video draws from its own
random stream (`default_rng([seed, STREAM, index])`), so rendering in parallel, or resuming an
interrupted build, gives the same bytes as a sequential run.

Layout of the output folder (see `rankvideo.data.benchmark` for the readers):

    corpus.jsonl          one record per video: doc_id, video path, proxies, ground truth
    queries.jsonl         one record per query: qid, text, split, variant, qtype, constraints
    queries_<split>.tsv   qid<TAB>text (the official RankVideo queries format)
    qrels_<split>.trec    TREC qrels, graded 0-3 (only grades > 0 are written)
    qrels.trec            all splits together
    videos/<doc_id>.mp4   H.264 clips
    manifest.json         config, counts and a content hash of the files above
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..trec import write_qrels
from ..video import write_video
from ...utils.io import progress
from . import proxies as P
from .narration import NarrationSpec, speak
from .queries import VARIANTS, VISUAL_KINDS, QuerySpec, VideoTruth, grade, sample_query
from .scenes import Scene, render, sample_scene
from .world import EVENT_KINDS, GENERIC_SCREEN, PLACES, Event, sample_events

KIND_INDEX = {k: i for i, k in enumerate(EVENT_KINDS)}

log = logging.getLogger(__name__)

# Independent random streams, so that changing e.g. the number of queries leaves videos alone.
_EVENTS, _VIDEOS, _QUERIES, _SPLITS, _IDS, _EMBLEMS, _SYNTH_QUERIES = 1, 2, 3, 4, 5, 6, 7
SPLITS = ("train", "val", "test")


@dataclass
class VideoSpec:
    width: int = 96
    height: int = 96
    fps: int = 8
    seconds: float = 6.0
    max_objects: int = 4
    text_rate: float = 0.5
    # The setting is visible: a background texture per kind of event, and in this share of the
    # clips a landmark emblem of the place. Without them no video reader could tell a flood in
    # Lisbon from a parade in Lima, and reranking the first stage's candidates would be guesswork.
    setting_texture: bool = True
    emblem_rate: float = 0.8


@dataclass
class BenchmarkConfig:
    """The `data` node of the config for `data=synthetic` (sizes) plus the `synthesis` node (query
    variants). Kept as one flat dataclass so the builder has a single typed input."""

    seed: int = 1234
    num_events: int = 50
    videos_per_event: int = 16
    details_per_video: int = 2
    num_queries: int = 600
    # Extra training-only queries (the paper's synthetic queries: 7,906 next to 1,361 human ones),
    # written by the same generator from their own random stream; val and test are unchanged.
    synthetic_train_queries: int = 0
    split_fractions: dict = field(default_factory=lambda: {"train": 0.6, "val": 0.2, "test": 0.2})
    video: VideoSpec = field(default_factory=VideoSpec)
    proxies: P.ProxyConfig = field(default_factory=P.ProxyConfig)
    variants: dict = field(default_factory=lambda: {v: 1.0 for v in VARIANTS})
    visual_qtypes: dict = field(default_factory=lambda: {k: 1.0 for k in VISUAL_KINDS})
    place_rate: float = 0.5
    num_workers: int = 2
    # A spoken narration track per clip (the templated transcript, synthesised), so that the
    # `proxies` stage's speech recognition hears real speech. Off by default: the default
    # benchmark stays byte-identical.
    narration: NarrationSpec = field(default_factory=NarrationSpec)
    # Where the corpus' caption/asr/ocr texts come from: `templates` (written from the ground
    # truth, the default) or `tools` (the `proxies` stage's files in `tool_proxies`).
    proxy_source: str = "templates"
    tool_proxies: str | None = None

    def validate(self) -> None:
        bad = set(self.variants) - set(VARIANTS)
        if bad:
            raise ValueError(f"synthesis.variants has unknown evidence variants {sorted(bad)}; choose from {list(VARIANTS)}")
        if not any(w > 0 for w in self.variants.values()):
            raise ValueError("synthesis.variants: at least one evidence variant needs a positive weight")
        bad = set(self.visual_qtypes) - set(VISUAL_KINDS)
        if bad:
            raise ValueError(f"synthesis.visual_qtypes has unknown kinds {sorted(bad)}; choose from {list(VISUAL_KINDS)}")
        if set(self.split_fractions) != set(SPLITS) or abs(sum(self.split_fractions.values()) - 1) > 1e-6:
            raise ValueError(f"data.split_fractions must give {list(SPLITS)} summing to 1, got {self.split_fractions}")
        if int(self.synthetic_train_queries) < 0:
            raise ValueError(f"data.synthetic_train_queries must be >= 0, got {self.synthetic_train_queries}")
        if self.video.width % 2 or self.video.height % 2:
            raise ValueError("data.video.width and height must be even (H.264 with yuv420p)")
        self.narration.validate()
        if self.proxy_source not in ("templates", "tools"):
            raise ValueError(f"data.proxy_source={self.proxy_source!r}: choose templates or tools")
        if self.proxy_source == "tools" and not self.tool_proxies:
            raise ValueError("data.proxy_source=tools needs data.tool_proxies: the folder the proxies stage wrote "
                             "(captions.jsonl, asr.jsonl, ocr.jsonl; docs/proxies.md)")


def _render_one(args: tuple) -> str:
    path, scene_dict = args[:2]
    narration = args[2] if len(args) > 2 else None  # (text, NarrationSpec) when narrated
    if not os.path.exists(path):  # resume: videos are written atomically, so a file is complete
        audio, rate = speak(narration[0], narration[1]) if narration else (None, 16000)
        write_video(path, render(Scene.from_dict(scene_dict)), fps=scene_dict["fps"], audio=audio, audio_rate=rate)
    return path


def _apply_tool_proxies(records: list[dict], folder: str) -> dict[str, int]:
    """Replace the templated caption/asr/ocr of every record with the proxies stage's texts in
    `folder`; returns how many records each file covered. A file that is absent leaves its field
    templated (logged); a video the file does not name gets an empty text (counted, logged)."""
    from ..multivent import PROXY_FILES, read_text_features

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"data.tool_proxies={folder}: no such folder; run the proxies stage on the narrated "
                                "benchmark first (docs/proxies.md)")
    covered: dict[str, int] = {}
    for field_name, file_name in PROXY_FILES.items():
        path = root / file_name
        if not path.is_file():
            log.warning("%s: absent, the corpus keeps its templated %s texts", path, field_name)
            continue
        texts = read_text_features(path)
        covered[field_name] = sum(r["doc_id"] in texts for r in records)
        missing = [r["doc_id"] for r in records if r["doc_id"] not in texts]
        if missing:
            log.warning("%s: %d corpus videos have no %s text (empty; first: %s)", path, len(missing), field_name, missing[0])
        for r in records:
            r[field_name] = texts.get(r["doc_id"], "")
    return covered


def _sample_corpus(cfg: BenchmarkConfig) -> tuple[list[dict], dict[str, VideoTruth]]:
    events = sample_events(np.random.default_rng([cfg.seed, _EVENTS]), cfg.num_events)
    n_videos = cfg.num_events * cfg.videos_per_event
    # Doc ids are shuffled so that they reveal nothing about the event (ties in a first-stage
    # ranking are broken by doc id).
    ids = np.random.default_rng([cfg.seed, _IDS]).permutation(n_videos)
    records, truths = [], {}
    for i in range(n_videos):
        ev: Event = events[i // cfg.videos_per_event]
        rng = np.random.default_rng([cfg.seed, _VIDEOS, i])
        kind = EVENT_KINDS[ev.kind]
        details = [str(d) for d in rng.choice(kind["details"], size=cfg.details_per_video, replace=False)]
        scene = sample_scene(
            rng,
            width=cfg.video.width,
            height=cfg.video.height,
            fps=cfg.video.fps,
            seconds=cfg.video.seconds,
            max_objects=cfg.video.max_objects,
            text_words=kind["screen"] + GENERIC_SCREEN,
            text_rate=cfg.video.text_rate,
            kind_index=KIND_INDEX[ev.kind] if cfg.video.setting_texture else -1,
            # Its own stream, so that the emblem draw leaves every text proxy as it was.
            place_index=PLACES.index(ev.place) if np.random.default_rng([cfg.seed, _EMBLEMS, i]).random() < cfg.video.emblem_rate else -1,
        )
        title, description = P.metadata(ev, details, scene, rng, cfg.proxies)
        doc_id = f"vid{int(ids[i]):05d}"
        records.append({
            "doc_id": doc_id,
            "video": f"videos/{doc_id}.mp4",
            "event_id": ev.event_id,
            "title": title,
            "description": description,
            "asr": P.asr(ev, details, rng, cfg.proxies),
            "ocr": P.ocr(scene, rng, cfg.proxies),
            "caption": P.caption(scene, rng, cfg.proxies, kind=ev.kind),
            "truth": {"kind": ev.kind, "place": ev.place, "details": details, "scene": scene.to_dict()},
        })
        truths[doc_id] = VideoTruth(kind=ev.kind, place=ev.place, details=tuple(details), scene=scene)
    records.sort(key=lambda r: r["doc_id"])
    return records, truths


def _sample_queries(cfg: BenchmarkConfig, truths: dict[str, VideoTruth], *, count: int | None = None, stream: int = _QUERIES,
                   prefix: str = "q", exclude: set[str] | None = None) -> tuple[list[QuerySpec], dict[str, dict[str, int]]]:
    """`count` distinct queries (default `num_queries`) with their graded judgments over every
    video; texts in `exclude` (another set's queries) are not repeated."""
    n_wanted = cfg.num_queries if count is None else int(count)
    rng = np.random.default_rng([cfg.seed, stream])
    names = [v for v in VARIANTS if cfg.variants.get(v, 0) > 0]
    weights = np.array([cfg.variants[v] for v in names], dtype=float)
    qtypes = {k: float(w) for k, w in cfg.visual_qtypes.items() if w > 0}
    doc_ids = sorted(truths)
    queries: list[QuerySpec] = []
    qrels: dict[str, dict[str, int]] = {}
    seen_text: set[str] = set(exclude or ())
    attempts = 0
    what = "data.num_queries" if stream == _QUERIES else "data.synthetic_train_queries"
    while len(queries) < n_wanted:
        attempts += 1
        if attempts > 50 * n_wanted:
            raise RuntimeError(
                f"could only write {len(queries)} of {what}={n_wanted} distinct queries; "
                "lower it or add videos (num_events, videos_per_event)"
            )
        doc = doc_ids[int(rng.integers(len(doc_ids)))]
        variant = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        q = sample_query(f"{prefix}{len(queries):05d}", variant, doc, truths[doc], rng, qtype_weights=qtypes, place_rate=cfg.place_rate)
        if q is None or q.text in seen_text:
            continue
        seen_text.add(q.text)
        judged = {d: g for d in doc_ids if (g := grade(q, truths[d])) > 0}
        if judged.get(doc) != 3:  # a generator bug, never the data's fault: stop rather than mislabel
            raise RuntimeError(f"query {q.qid} ({q.text!r}) does not fully match its own source video {doc}")
        queries.append(q)
        qrels[q.qid] = judged
    return queries, qrels


def _assign_splits(cfg: BenchmarkConfig, queries: list[QuerySpec]) -> dict[str, str]:
    order = np.random.default_rng([cfg.seed, _SPLITS]).permutation(len(queries))
    n = len(queries)
    n_train = int(round(cfg.split_fractions["train"] * n))
    n_val = int(round(cfg.split_fractions["val"] * n))
    split_of = {}
    for rank, idx in enumerate(order):
        split_of[queries[int(idx)].qid] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return split_of


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


def _digest(folder: Path) -> str:
    """sha256 over every file (path and bytes), for the manifest: proves two builds are identical."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def build_benchmark(cfg: BenchmarkConfig, out_dir: str | os.PathLike) -> dict:
    """Build the benchmark into `out_dir` and return its manifest.

    The build happens in `<out_dir>.partial` and is moved into place at the end, so `out_dir` is
    either the previous complete benchmark or the new one, never half of each. Rendered videos in
    an interrupted `.partial` folder of the same config are reused.
    """
    cfg.validate()
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    stage = out_dir.with_name(out_dir.name + ".partial")
    fingerprint = hashlib.sha256(json.dumps(_cfg_dict(cfg), sort_keys=True).encode()).hexdigest()[:16]
    marker = stage / ".fingerprint"
    if stage.exists() and (not marker.exists() or marker.read_text() != fingerprint):
        shutil.rmtree(stage)  # leftovers of another config: not reusable
    (stage / "videos").mkdir(parents=True, exist_ok=True)
    # A build killed inside write_video leaves its hidden temporary file behind; it must not end
    # up in the benchmark (nor in its hash).
    for tmp in (stage / "videos").glob(".*.tmp"):
        tmp.unlink()
    marker.write_text(fingerprint)

    records, truths = _sample_corpus(cfg)
    if cfg.narration.enabled:
        cfg.narration.check_tool()  # once, with the apt line, before any worker starts
        # The narrator speaks the templated transcript (the ASR proxy), whatever the proxy source.
        jobs = [(str(stage / r["video"]), r["truth"]["scene"], (r["asr"], cfg.narration)) for r in records]
    else:
        jobs = [(str(stage / r["video"]), r["truth"]["scene"]) for r in records]
    if cfg.proxy_source == "tools":
        _apply_tool_proxies(records, str(cfg.tool_proxies))
    todo = sum(not os.path.exists(p) for p, *_ in jobs)
    if todo < len(jobs):
        log.info("resuming: %d of %d videos already rendered in %s", len(jobs) - todo, len(jobs), stage)
    bar = progress(len(jobs), "render videos", "video")
    if cfg.num_workers > 1:
        with ProcessPoolExecutor(max_workers=cfg.num_workers) as pool:
            for _ in pool.map(_render_one, jobs, chunksize=8):
                bar.update()
    else:
        for job in jobs:
            _render_one(job)
            bar.update()
    bar.close()

    queries, qrels = _sample_queries(cfg, truths)
    split_of = _assign_splits(cfg, queries)
    if cfg.synthetic_train_queries > 0:
        extra, extra_qrels = _sample_queries(cfg, truths, count=cfg.synthetic_train_queries, stream=_SYNTH_QUERIES,
                                             prefix="s", exclude={q.text for q in queries})
        queries += extra
        qrels.update(extra_qrels)
        split_of.update({q.qid: "train" for q in extra})
    _write_jsonl(stage / "corpus.jsonl", records)
    _write_jsonl(stage / "queries.jsonl", ({**q.to_dict(), "split": split_of[q.qid]} for q in queries))
    for split in SPLITS:
        sq = [q for q in queries if split_of[q.qid] == split]
        with open(stage / f"queries_{split}.tsv", "w", encoding="utf-8") as f:
            for q in sq:
                f.write(f"{q.qid}\t{q.text}\n")
        write_qrels(stage / f"qrels_{split}.trec", {q.qid: qrels[q.qid] for q in sq})
    write_qrels(stage / "qrels.trec", qrels)
    marker.unlink()

    manifest = {
        "benchmark": "rankvideo-synthetic",
        "config": _cfg_dict(cfg),
        "num_videos": len(records),
        "num_queries": {s: sum(v == s for v in split_of.values()) for s in SPLITS},
        "variants": _count(q.variant for q in queries),
        "qtypes": _count(q.qtype for q in queries),
        "grades": _count(g for judged in qrels.values() for g in judged.values()),
        "sha256": _digest(stage),
    }
    # Timing is returned (and logged to MLflow) but not written: the folder must be a pure function
    # of the config, or DVC would see a new benchmark after every rebuild.
    seconds = round(time.perf_counter() - t0, 2)
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(stage, out_dir)
    log.info("benchmark: %d videos, %s queries in %.1fs -> %s", len(records), manifest["num_queries"], seconds, out_dir)
    return {**manifest, "build_seconds": seconds}


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[str(x)] = out.get(str(x), 0) + 1
    return dict(sorted(out.items()))


def _cfg_dict(cfg: BenchmarkConfig) -> dict:
    from dataclasses import asdict

    d = asdict(cfg)
    d.pop("num_workers")  # does not change the output
    # Options at their defaults are left out, so the default benchmark's manifest (and hash) is
    # what it was before they existed.
    if not cfg.narration.enabled:
        d.pop("narration")
    if cfg.proxy_source == "templates":
        d.pop("proxy_source")
        d.pop("tool_proxies")
    return d
