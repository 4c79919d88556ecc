"""The pre-training corpus: general video-language data from the embedded benchmark's world.

A real backbone (Qwen3-VL) reaches RankVideo's curriculum after pre-training on web-scale
video-language data: it already knows where to look in a long prompt and how the words of a
question relate to what a frame shows. The tiny default backbone has had none, so it gets a
pre-training corpus of its own, written by the synthetic world's own code (`scenes`, `world`):
its own seed and random streams, its own videos, scenes, descriptions and questions. It never
reads the benchmark; `tests/unit/data/test_pretraining.py` checks that no benchmark video,
scene, caption or query appears in it.

What the corpus holds (one record per video, `PretrainVideo`) and what is asked about it
(`sample_example`):

- question types (`QTYPES`): colour, shape, colour and shape together, counts, which object
  comes first, motion, size, the on-screen word, the kind of event (its background), the place
  (its emblem), absence, relevance of a generic search query (an event and visual facts, true
  or with one fact changed), and `search`: a user's query for a news clip written and judged by
  the world's query code (`_search_q`), and `event`: such a query that always names the place,
  its irrelevant ones mostly another place (`_event_q`), and `graded`: `search` queries and
  partial matches of the clip's event (grades 1-2), answered yes with probability grade / 3
  (`_graded_q`); yes/no answers are balanced, open
  questions have one-word or short answers;
- prompt forms (`FORMS`): `short` (the video, then a terse question: "red circle?"),
  `question` (a full question), `instruct` (an instruction system prompt of varied length and
  wording, then the question), `rerank` (the paper's reranking prompt, word for word, with a
  generic query), `caption` (describe the clip, the stage-1 prompt).

Every answer is written as `<answer>...</answer>` (captions as `<think>...</think>`), so the
yes/no logits of a relevance answer sit exactly where the reranker reads its score.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...utils.io import progress, write_json
from ..video import read_clip, write_video
from .build import KIND_INDEX, VideoSpec
from .queries import VISUAL_KINDS, Constraint, QuerySpec, VideoTruth, _visual_constraint, grade
from .scenes import COLOURS, MOTIONS, SHAPES, Scene, render, sample_scene
from .world import EVENT_KINDS, GENERIC_SCREEN, PLACES

log = logging.getLogger(__name__)

__all__ = [
    "FORMS",
    "GENERAL_QTYPES",
    "QTYPES",
    "SEARCH_LEADS",
    "Example",
    "PretrainCorpus",
    "PretrainCorpusConfig",
    "PretrainVideo",
    "build_corpus",
    "corpus_fingerprint",
    "describe",
    "sample_example",
    "sample_videos",
    "tokenizer_texts",
]

# Random streams of the pre-training corpus; disjoint from the benchmark's (1-7 in build.py) so
# that even the benchmark's own seed would draw other videos.
_VIDEOS, _EMBLEMS = 101, 102

QTYPES = ("colour", "shape", "object", "count", "order", "motion", "size", "word", "kind", "place", "absence",
          "relevance", "search", "event", "graded")
# The types of the first pre-training round. The tokenizer's training text and the held-out rotation
# draw from these only, so that adding a type leaves the shipped tokenizer and held-out set as they were.
GENERAL_QTYPES = QTYPES[:12]
FORMS = ("short", "question", "instruct", "rerank", "caption")
YES, NO = "yes", "no"
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")
MOTION_WORDS = {"left to right": "left to right", "right to left": "right to left", "upward": "upward",
                "downward": "downward", "static": "still"}
SCREEN_WORDS = sorted({w for k in EVENT_KINDS.values() for w in k["screen"]} | set(GENERIC_SCREEN))


@dataclass
class PretrainCorpusConfig:
    """The `pretrain.corpus` node: how many videos, in which format, from which seed."""

    seed: int = 20261205
    num_videos: int = 4000
    num_heldout: int = 200  # the last videos: never trained on, asked the held-out questions
    video: VideoSpec = field(default_factory=VideoSpec)
    fps: float = 2.0
    max_frames: int = 12
    num_workers: int = 2

    def validate(self) -> None:
        if int(self.num_heldout) < 1 or int(self.num_videos) <= int(self.num_heldout):
            raise ValueError(f"pretrain.corpus: need num_videos > num_heldout >= 1, got {self.num_videos} and {self.num_heldout}")
        if self.video.width % 2 or self.video.height % 2:
            raise ValueError("pretrain.corpus.video.width and height must be even (H.264 with yuv420p)")


@dataclass(frozen=True)
class PretrainVideo:
    index: int
    kind: str
    place: str
    scene: Scene

    def to_dict(self) -> dict:
        return {"index": self.index, "kind": self.kind, "place": self.place, "scene": self.scene.to_dict()}

    @staticmethod
    def from_dict(d: dict) -> "PretrainVideo":
        return PretrainVideo(int(d["index"]), d["kind"], d["place"], Scene.from_dict(d["scene"]))

    @property
    def emblem_shown(self) -> bool:
        return self.scene.place_index >= 0


def sample_videos(cfg: PretrainCorpusConfig) -> list[PretrainVideo]:
    """The corpus's videos: any kind of event in any place (all 216 pairs of the world), a scene
    from the world's own sampler. Each video draws from its own stream."""
    kinds = list(EVENT_KINDS)
    out = []
    for i in range(int(cfg.num_videos)):
        rng = np.random.default_rng([int(cfg.seed), _VIDEOS, i])
        kind = kinds[int(rng.integers(len(kinds)))]
        place = PLACES[int(rng.integers(len(PLACES)))]
        shown = np.random.default_rng([int(cfg.seed), _EMBLEMS, i]).random() < cfg.video.emblem_rate
        scene = sample_scene(
            rng, width=cfg.video.width, height=cfg.video.height, fps=cfg.video.fps, seconds=cfg.video.seconds,
            max_objects=cfg.video.max_objects, text_words=EVENT_KINDS[kind]["screen"] + GENERIC_SCREEN,
            text_rate=cfg.video.text_rate, kind_index=KIND_INDEX[kind] if cfg.video.setting_texture else -1,
            place_index=PLACES.index(place) if shown else -1,
        )
        out.append(PretrainVideo(i, kind, place, scene))
    return out


# --- the rendered corpus ----------------------------------------------------------------------


def _frames_of(args: tuple[dict, float, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Render a scene, encode it as the benchmark's H.264 files are, decode and sample it as the
    reranker reads videos: the model sees the same compression in pre-training as later."""
    scene_dict, fps, max_frames = args
    scene = Scene.from_dict(scene_dict)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_video(path, render(scene), fps=scene.fps)
        clip = read_clip(path, fps=fps, max_frames=max_frames)
    return clip.frames, clip.timestamps, clip.native_fps


def _cfg_dict(cfg: PretrainCorpusConfig) -> dict:
    d = asdict(cfg)
    d.pop("num_workers")  # does not change the output
    return d


def corpus_fingerprint(cfg: PretrainCorpusConfig) -> str:
    return hashlib.sha256(json.dumps(_cfg_dict(cfg), sort_keys=True).encode()).hexdigest()[:16]


class PretrainCorpus:
    """A built corpus folder: `videos.jsonl` (ground truth), `frames.npy` (uint8 [N, T, H, W, 3],
    the decoded frames), `timestamps.npy` ([N, T] seconds), `manifest.json`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{self.root}: no pre-training corpus here (no manifest.json); the pretrain stage builds it")
        self.manifest = json.loads(manifest.read_text())
        with open(self.root / "videos.jsonl", encoding="utf-8") as f:
            self.videos = [PretrainVideo.from_dict(json.loads(line)) for line in f]
        self.frames = np.load(self.root / "frames.npy", mmap_mode="r")
        self.timestamps = np.load(self.root / "timestamps.npy")
        self.native_fps = float(self.manifest["native_fps"])
        n_held = int(self.manifest["config"]["num_heldout"])
        self.train_indices = list(range(len(self.videos) - n_held))
        self.heldout_indices = list(range(len(self.videos) - n_held, len(self.videos)))

    def clip(self, index: int, max_frames: int | None = None):
        """The clip of video `index`; with `max_frames`, that many of its frames spread evenly
        over it, first and last included (the last frame shows every object of the scene)."""
        from ..video import Clip

        keep = slice(None)
        n = self.frames.shape[1]
        if max_frames is not None and int(max_frames) < n:
            keep = np.unique(np.rint(np.linspace(0, n - 1, max(int(max_frames), 1))).astype(int))
        return Clip(frames=np.array(self.frames[index][keep]), timestamps=self.timestamps[index][keep],
                    native_fps=self.native_fps, path=f"{self.root}#video{index}")


def build_corpus(cfg: PretrainCorpusConfig, out_dir: str | os.PathLike) -> PretrainCorpus:
    """Render the corpus into `out_dir` (reused as it is when its config is unchanged). Chunks of
    rendered frames are kept in `<out_dir>.partial/` so an interrupted build resumes."""
    cfg.validate()
    out = Path(out_dir)
    fp = corpus_fingerprint(cfg)
    if (out / "manifest.json").exists() and json.loads((out / "manifest.json").read_text()).get("fingerprint") == fp:
        return PretrainCorpus(out)
    stage = out.with_name(out.name + ".partial")
    marker = stage / ".fingerprint"
    if stage.exists() and (not marker.exists() or marker.read_text() != fp):
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    marker.write_text(fp)
    videos = sample_videos(cfg)
    chunk = 200
    starts = list(range(0, len(videos), chunk))
    bar = progress(len(videos), "render pre-training videos", "video")
    pool = ProcessPoolExecutor(max_workers=int(cfg.num_workers)) if int(cfg.num_workers) > 1 else None
    try:
        for s in starts:
            done = stage / f"chunk{s:06d}.npz"
            part = videos[s : s + chunk]
            if not done.exists():
                jobs = [(v.scene.to_dict(), float(cfg.fps), int(cfg.max_frames)) for v in part]
                results = list(pool.map(_frames_of, jobs, chunksize=8) if pool else map(_frames_of, jobs))
                shapes = {r[0].shape for r in results}
                if len(shapes) != 1:
                    raise RuntimeError(f"pre-training clips decoded to different shapes {sorted(shapes)}; every clip "
                                       "of the corpus must have the same length and size")
                tmp = stage / f".chunk{s:06d}.tmp.npz"
                np.savez(tmp, frames=np.stack([r[0] for r in results]), timestamps=np.stack([r[1] for r in results]),
                         native_fps=np.array([r[2] for r in results]))
                os.replace(tmp, done)
            bar.update(len(part))
    finally:
        bar.close()
        if pool:
            pool.shutdown()
    frames, stamps, native = [], [], []
    for s in starts:
        with np.load(stage / f"chunk{s:06d}.npz") as z:
            frames.append(z["frames"])
            stamps.append(z["timestamps"])
            native.append(z["native_fps"])
    frames_all = np.concatenate(frames)
    tmp_dir = out.with_name(out.name + ".tmp")
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)
    np.save(tmp_dir / "frames.npy", frames_all)
    np.save(tmp_dir / "timestamps.npy", np.concatenate(stamps))
    with open(tmp_dir / "videos.jsonl", "w", encoding="utf-8") as f:
        for v in videos:
            f.write(json.dumps(v.to_dict(), sort_keys=True) + "\n")
    native_fps = float(np.concatenate(native)[0])
    write_json(tmp_dir / "manifest.json", {
        "corpus": "rankvideo-pretraining", "config": _cfg_dict(cfg), "fingerprint": fp, "num_videos": len(videos),
        "frames_shape": list(frames_all.shape), "native_fps": native_fps,
        "frames_sha256": hashlib.sha256(frames_all.tobytes()).hexdigest(),
    })
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp_dir, out)
    shutil.rmtree(stage)
    return PretrainCorpus(out)


# --- descriptions ---------------------------------------------------------------------------


def _obj(o) -> str:
    return f"{o.colour} {o.shape}"


def _a(phrase: str) -> str:
    return f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}"


def describe(video: PretrainVideo, rng: np.random.Generator) -> str:
    """A complete, correct description of the clip (the captioning target): the setting, the
    emblem, every object in order with its size and motion, the on-screen word, the count."""
    s = video.scene
    parts = [f"{_a(video.kind).capitalize()} scene." if s.kind_index >= 0 else "A plain dark scene."]
    if video.emblem_shown:
        parts.append(f"The emblem of {video.place} is in the corner.")
    for i, o in enumerate(s.objects):
        move = "stays still" if o.motion == "static" else f"moves {o.motion}"
        lead = "It opens with" if i == 0 else str(rng.choice(["Next comes", "Later comes", "Then comes"]))
        parts.append(f"{lead} {_a(o.size + ' ' + _obj(o))} that {move}.")
    if s.text is not None:
        parts.append(f"The screen reads {s.text.word}.")
    n = len(s.objects)
    parts.append(f"{NUMBERS[n].capitalize()} shape{'s' if n != 1 else ''} in all.")
    return " ".join(parts)


# --- questions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One training or held-out example: a question about video `index` in prompt form `form`.

    `text` is what the prompt carries (the terse question, the full question, or the generic
    query of the reranking prompt); `answer` the target word(s); `yes_no` whether the answer is
    yes or no (then the score logit(yes) - logit(no) decides it); `grade` the world's grade
    (0-3) of a `search`-like query about the clip, where one was judged."""

    index: int
    qtype: str
    form: str
    text: str
    answer: str
    yes_no: bool
    system: str | None = None
    grade: int | None = None


@dataclass(frozen=True)
class _Question:
    short: str
    full: str
    query: str | None  # the fact as a search-query phrase (yes/no questions only)
    answer: str
    grade: int | None = None  # queries.grade of a search query against the clip

    @property
    def yes_no(self) -> bool:
        return self.answer in (YES, NO)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _colour_q(v, rng):
    present = sorted({o.colour for o in v.scene.objects})
    if rng.random() < 0.7:
        yes = rng.random() < 0.5 or len(present) == len(COLOURS)
        c = _pick(rng, present if yes else [c for c in COLOURS if c not in present])
        return _Question(f"{c}?", f"Is there a {c} object?", f"something {c}", YES if yes else NO)
    shapes = [s for s in SHAPES if sum(o.shape == s for o in v.scene.objects) == 1]
    if not shapes:
        return None
    s = _pick(rng, shapes)
    o = next(o for o in v.scene.objects if o.shape == s)
    return _Question(f"{s} colour?", f"What colour is the {s}?", None, o.colour)


def _shape_q(v, rng):
    present = sorted({o.shape for o in v.scene.objects})
    if rng.random() < 0.7:
        yes = rng.random() < 0.5 or len(present) == len(SHAPES)
        s = _pick(rng, present if yes else [s for s in SHAPES if s not in present])
        return _Question(f"{s}?", f"Is there a {s}?", _a(s), YES if yes else NO)
    colours = [c for c in COLOURS if sum(o.colour == c for o in v.scene.objects) == 1]
    if not colours:
        return None
    c = _pick(rng, colours)
    o = next(o for o in v.scene.objects if o.colour == c)
    return _Question(f"{c} shape?", f"What shape is the {c} object?", None, o.shape)


def _absent_object(v, rng, hard: bool):
    """An absent (colour, shape); `hard`: one whose colour or shape is in the clip."""
    have = {(o.colour, o.shape) for o in v.scene.objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in have]
    if hard:
        colours, shapes = {c for c, _ in have}, {s for _, s in have}
        near = [(c, s) for c, s in absent if c in colours or s in shapes]
        absent = near or absent
    return _pick(rng, absent)


def _object_q(v, rng):
    yes = rng.random() < 0.5
    if yes:
        o = _pick(rng, v.scene.objects)
        c, s = o.colour, o.shape
    else:
        c, s = _absent_object(v, rng, hard=rng.random() < 0.7)
    return _Question(f"{c} {s}?", f"Is there a {c} {s}?", _a(f"{c} {s}"), YES if yes else NO)


def _count_q(v, rng):
    objs = v.scene.objects
    if rng.random() < 0.5:
        n = len(objs)
        if rng.random() < 0.6:
            return _Question("how many?", "How many shapes are there?", None, NUMBERS[n])
        yes = rng.random() < 0.5
        m = n if yes else _pick(rng, [k for k in range(1, 5) if k != n])
        return _Question(f"{NUMBERS[m]} shapes?", f"Are there exactly {NUMBERS[m]} shapes?", f"exactly {NUMBERS[m]} shapes",
                         YES if yes else NO)
    s = _pick(rng, SHAPES)
    n = sum(o.shape == s for o in objs)
    return _Question(f"how many {s}s?", f"How many {s}s are there?", None, NUMBERS[n])


def _order_q(v, rng):
    objs = v.scene.objects
    if rng.random() < 0.4:
        return _Question("first?", "Which object appears first?", None, _obj(objs[0]))
    if len(objs) < 2:
        return None
    i, j = sorted(rng.choice(len(objs), size=2, replace=False))
    a, b = objs[int(i)], objs[int(j)]
    yes = rng.random() < 0.5
    if not yes:
        a, b = b, a
    return _Question(f"{_obj(a)} before {_obj(b)}?", f"Does the {_obj(a)} appear before the {_obj(b)}?",
                     f"{_a(_obj(a))} appearing before {_a(_obj(b))}", YES if yes else NO)


def _motion_phrase(m: str) -> str:
    return "stand still" if m == "static" else f"move {m}"


def _motion_q(v, rng):
    o = _pick(rng, v.scene.objects)
    if rng.random() < 0.4:
        return _Question(f"{_obj(o)} motion?", f"How does the {_obj(o)} move?", None, MOTION_WORDS[o.motion])
    yes = rng.random() < 0.5
    m = o.motion if yes else _pick(rng, [m for m in MOTIONS if m != o.motion])
    query = f"{_a(_obj(o))} that stays still" if m == "static" else f"{_a(_obj(o))} moving {m}"
    return _Question(f"{_obj(o)} {MOTION_WORDS[m]}?", f"Does the {_obj(o)} {_motion_phrase(m)}?", query, YES if yes else NO)


def _size_q(v, rng):
    objs = v.scene.objects
    large = [o for o in objs if o.size == "large"]
    small = [o for o in objs if o.size == "small"]
    if rng.random() < 0.4 or not (large and small):
        o = _pick(rng, objs)
        return _Question(f"{_obj(o)} size?", f"How big is the {_obj(o)}?", None, o.size)
    a, b = _pick(rng, large), _pick(rng, small)
    yes = rng.random() < 0.5
    if not yes:
        a, b = b, a
    return _Question(f"{_obj(a)} bigger than {_obj(b)}?", f"Is the {_obj(a)} bigger than the {_obj(b)}?",
                     f"{_a(_obj(a))} larger than {_a(_obj(b))}", YES if yes else NO)


def _word_q(v, rng):
    t = v.scene.text
    if rng.random() < 0.4:
        return _Question("word?", "What word is written on screen?", None, t.word if t else "none")
    yes = t is not None and rng.random() < 0.5
    w = t.word if yes else _pick(rng, [w for w in SCREEN_WORDS if t is None or w != t.word])
    return _Question(f"{w}?", f"Does the screen read {w}?", f"the word {w} on screen", YES if yes else NO)


def _kind_q(v, rng):
    if rng.random() < 0.4:
        return _Question("event?", "What kind of event is this?", None, v.kind)
    yes = rng.random() < 0.5
    k = v.kind if yes else _pick(rng, [k for k in EVENT_KINDS if k != v.kind])
    return _Question(f"{k}?", f"Is this a {k}?", _a(k), YES if yes else NO)


def _place_q(v, rng):
    if rng.random() < 0.4:
        return _Question("place?", "Which place does the emblem show?", None, v.place if v.emblem_shown else "none")
    yes = v.emblem_shown and rng.random() < 0.5
    p = v.place if yes else _pick(rng, [p for p in PLACES if p != v.place])
    return _Question(f"{p} emblem?", f"Is the emblem of {p} shown?", None, YES if yes else NO)


def _absence_q(v, rng):
    present = {o.colour for o in v.scene.objects}
    yes = rng.random() < 0.5 and len(present) < len(COLOURS)
    c = _pick(rng, [c for c in COLOURS if c not in present] if yes else sorted(present))
    return _Question(f"no {c}?", f"Is there nothing {c} in the video?", f"nothing {c}", YES if yes else NO)


_VISUAL_FACTS = (_object_q, _motion_q, _order_q, _count_q, _size_q, _word_q, _absence_q, _colour_q, _shape_q)


def _fact(v, rng, truth: bool):
    """A visual fact as a query phrase, true of the clip or (truth=False) false of it."""
    for _ in range(50):
        q = _VISUAL_FACTS[int(rng.integers(len(_VISUAL_FACTS)))](v, rng)
        if q is not None and q.query is not None and (q.answer == YES) == truth:
            return q.query
    return None


def _relevance_q(v, rng):
    """A generic search query: an event (kind, with its place half of the time) and zero to two
    visual facts. Relevant iff every part holds of the clip's truth (as the benchmark judges);
    irrelevant queries change exactly one part (another kind, another place, or a false fact),
    so the whole query must be checked."""
    n_facts = int(rng.choice([0, 1, 1, 2, 2]))
    with_place = rng.random() < 0.5
    parts = ["kind"] + (["place"] if with_place else []) + ["fact"] * n_facts
    yes = rng.random() < 0.5
    wrong = -1 if yes else int(rng.integers(len(parts)))
    kind = v.kind if wrong != 0 else _pick(rng, [k for k in EVENT_KINDS if k != v.kind])
    place = v.place if not (with_place and wrong == 1) else _pick(rng, [p for p in PLACES if p != v.place])
    facts = []
    for i, p in enumerate(parts):
        if p == "fact":
            f = _fact(v, rng, truth=i != wrong)
            if f is None:
                return None
            facts.append(f)
    event = str(rng.choice([f"the {kind} in {place}", f"{_a(kind)} in {place}", f"the {place} {kind}"])) if with_place \
        else str(rng.choice([_a(kind), f"the {kind}", f"{_a(kind)} scene"]))
    if not facts:
        text = str(rng.choice([f"Clip of {event}", f"Scenes from {event}", f"Coverage of {event}", event.capitalize()]))
    else:
        joined = facts[0] if len(facts) == 1 else f"{facts[0]} and {facts[1]}"
        text = str(rng.choice([f"Clip of {event} with {joined}", f"Scenes from {event}: {joined}",
                               f"{joined.capitalize()} during {event}", f"Recording of {event} that has {joined}"]))
    return _Question(f"{text}?", f"Is this video relevant to: {text}?", text, YES if yes else NO)


# Openings of a user's search query. None is one of the benchmark's openings (tested), so no search
# query of the pre-training corpus can be a benchmark query.
SEARCH_LEADS = ("Clip of", "Scenes from", "Coverage of", "Recording of", "Show me", "Looking for", "Shots of",
                "Report on", "Broadcast of", "Any footage from", "Need video of", "Clips from")
# Which evidence the query's constraints come from: visual facts, the on-screen word, both, or what
# a narrator says (invisible: the frames can only tell its event).
_SEARCH_EVIDENCE = (("visual", 0.45), ("visual+word", 0.25), ("word", 0.15), ("spoken", 0.15))


def _search_constraints(kind: str, scene: Scene, evidence: str, rng) -> tuple[list, list[str]] | None:
    constraints, phrases = [], []
    if "visual" in evidence:
        for k in rng.permutation(len(VISUAL_KINDS)):
            got = _visual_constraint(VISUAL_KINDS[int(k)], scene, rng)
            if got:
                constraints.append(got[0])
                phrases.append(got[1])
                break
    if "word" in evidence:
        if scene.text is None:
            return None
        constraints.append(Constraint("ocr", {"word": scene.text.word}))
        phrases.append(str(rng.choice([f"with the word {scene.text.word} on screen", f"where the screen reads {scene.text.word}",
                                       f"and {scene.text.word} written on screen"])))
    if evidence == "spoken":
        detail = _pick(rng, EVENT_KINDS[kind]["details"])
        constraints.append(Constraint("detail", {"detail": detail}))
        phrases.append(str(rng.choice([f"where the reporter talks about {detail}", f"showing {detail}",
                                       f"while the narrator mentions {detail}"])))
    return (constraints, phrases) if constraints else None


def _search_q(v, rng, event: bool = False):
    """A search query as a user of a news-video archive writes it: an event (its kind, with its
    place half of the time) and constraints phrased by the world's query writer
    (`queries._visual_constraint`: attributes, motion, order, counts, size, negation; the on-screen
    word; a spoken detail), judged by the world's own `queries.grade` against the clip's truth.
    Relevant queries are written from the clip itself; irrelevant ones from another kind of event,
    another place, or another scene of the same event (the first stage's hard negatives: same
    event, other facts). A spoken detail cannot be seen, so it counts as holding: only the event
    and the visible facts decide. Partial matches (grades 1-2) are not asked. `event`: the
    queries of `_event_q`."""
    yes = rng.random() < 0.5
    for _ in range(20):  # the answer is drawn first, so that partial matches do not unbalance it
        q = _search_attempt(v, rng, yes, event)
        if q is not None:
            return q
    return None


def _event_q(v, rng):
    """A search query (as `_search_q` writes them) that always names the place, about a clip that
    shows its place's emblem: irrelevant ones name another place (70%) or another kind of event in
    the same place (30%), the clip's own facts kept. It asks for the whole event, the query's kind
    and its place together (`search` names another place in 15% of its irrelevant queries). Its
    terse form is the event alone ("flood in Lisbon?")."""
    return _search_q(v, rng, event=True) if v.emblem_shown else None


def _graded_q(v, rng):
    """A search query (as `_search_q` writes them) whose relevance is graded: half of them are
    `search` queries (grade 3 or 0), half partial matches, written from another scene of the
    clip's own event so that the world's `queries.grade` gives 1 or 2 (the named objects are on
    screen, but not every fact holds). A query of grade g is answered yes with probability g / 3,
    so the score's expectation orders 3 > 2 > 1 > 0, as the benchmark's graded judgments do."""
    if rng.random() < 0.5:
        return _search_q(v, rng)
    for _ in range(40):
        q = _search_attempt(v, rng, False, partial=True)
        if q is not None:
            return q
    return None


def _other_scene(v, rng) -> Scene:
    """Another scene of the clip's own event (its background and emblem, other objects)."""
    s = v.scene
    return sample_scene(rng, width=s.width, height=s.height, fps=s.fps, seconds=s.seconds, max_objects=4,
                        text_words=EVENT_KINDS[v.kind]["screen"] + GENERIC_SCREEN, text_rate=0.5,
                        kind_index=s.kind_index, place_index=s.place_index)


def _search_attempt(v, rng, yes: bool, event: bool = False, partial: bool = False):
    with_place = True if event else rng.random() < 0.5
    kind, place, scene = v.kind, v.place, v.scene
    if partial:
        scene = _other_scene(v, rng)
    elif not yes:
        if event:
            how = str(rng.choice(["place", "kind"], p=[0.7, 0.3]))
        elif with_place:
            how = str(rng.choice(["kind", "place", "scene"], p=[0.3, 0.3, 0.4]))
        else:
            how = str(rng.choice(["kind", "scene"], p=[0.4, 0.6]))
        if how == "kind":
            kind = _pick(rng, [k for k in EVENT_KINDS if k != v.kind])
        elif how == "place":
            place = _pick(rng, [p for p in PLACES if p != v.place])
        else:
            scene = _other_scene(v, rng)
    evidence = _SEARCH_EVIDENCE[int(rng.choice(len(_SEARCH_EVIDENCE), p=[w for _, w in _SEARCH_EVIDENCE]))][0]
    got = _search_constraints(kind, scene, evidence, rng)
    if got is None:
        return None
    constraints, phrases = got
    spec = QuerySpec(qid="", text="", variant=evidence, qtype="search", source_doc="", kind=kind,
                     place=place if with_place else None, constraints=tuple(constraints))
    details = tuple(c.args["detail"] for c in constraints if c.kind == "detail")
    g = grade(spec, VideoTruth(kind=v.kind, place=v.place, details=details, scene=v.scene))
    if partial:
        if g not in (1, 2):
            return None
        yes = bool(rng.random() < g / 3)
    elif g not in (0, 3) or (g == 3) != yes:
        return None
    if with_place:
        anchor = str(rng.choice([f"the {kind} in {place}", f"{kind} in {place}", f"{_a(kind)} in {place}", f"the {place} {kind}"]))
    else:
        anchor = str(rng.choice([_a(kind), f"the {kind}", kind]))
    text = f"{_pick(rng, SEARCH_LEADS)} {anchor} {' '.join(phrases)}"
    short = f"{kind} in {place}?" if event else f"{text}?"
    return _Question(short, f"Is this video relevant to: {text}?", text, YES if yes else NO, g)


_GENERATORS = {"colour": _colour_q, "shape": _shape_q, "object": _object_q, "count": _count_q, "order": _order_q,
               "motion": _motion_q, "size": _size_q, "word": _word_q, "kind": _kind_q, "place": _place_q,
               "absence": _absence_q, "relevance": _relevance_q, "search": _search_q, "event": _event_q,
               "graded": _graded_q}

# Instruction system prompts of varied length and wording (the `instruct` form).
INSTRUCTIONS = (
    "Answer the question about the video.",
    "You are a helpful assistant. Look at the video and answer the question in a few words.",
    "You are a careful video analyst. Watch every frame of the video, then answer the user's question with a "
    "short answer inside <answer></answer>.",
    "You are a helpful assistant specialized in video understanding. The user shows you a short video and asks "
    "a question about it: what objects appear, their colours, shapes, sizes and motion, the order in which they "
    "appear, any text on screen, the setting and the place. Answer briefly and accurately. Respond with "
    "<answer>...</answer>.",
)


def sample_example(video: PretrainVideo, qtype: str, form: str, rng: np.random.Generator) -> Example | None:
    """One example of `qtype` about `video` in prompt `form`, or None when the clip cannot
    support it (an order question about a single object, say). The `rerank` form carries the
    question's search-query phrase in the paper's prompt, so it only takes yes/no questions;
    `caption` ignores `qtype`."""
    if form == "caption":
        return Example(video.index, "caption", form, "", describe(video, rng), False)
    q = _GENERATORS[qtype](video, rng)
    if q is None:
        return None
    if form == "short":
        return Example(video.index, qtype, form, q.short, q.answer, q.yes_no, grade=q.grade)
    if form == "question":
        return Example(video.index, qtype, form, q.full, q.answer, q.yes_no, grade=q.grade)
    if form == "instruct":
        system = INSTRUCTIONS[int(rng.integers(len(INSTRUCTIONS)))]
        return Example(video.index, qtype, form, f"Question: {q.full}", q.answer, q.yes_no, system=system, grade=q.grade)
    if form == "rerank":
        if q.query is None:
            return None
        return Example(video.index, qtype, form, q.query, q.answer, True, grade=q.grade)
    raise ValueError(f"unknown prompt form {form!r}; choose from {FORMS}")


def tokenizer_texts(videos: list[PretrainVideo], seed: int, per_video: int = 4) -> list[str]:
    """Text the tokenizer is trained on: the corpus's descriptions, questions, answers and
    queries, the instruction prompts, and the world's vocabulary (kinds, places, spoken details,
    on-screen words), never benchmark text."""
    rng = np.random.default_rng([seed, 103])
    texts = list(INSTRUCTIONS)
    for k, d in EVENT_KINDS.items():
        texts += [k, *d["details"], *d["screen"]]
    texts += PLACES + GENERIC_SCREEN
    for v in videos:
        texts.append(describe(v, rng))
        for _ in range(per_video):
            q = _GENERATORS[GENERAL_QTYPES[int(rng.integers(len(GENERAL_QTYPES)))]](v, rng)
            if q is not None:
                texts += [q.full, q.short, q.answer] + ([q.query] if q.query else [])
    return texts
