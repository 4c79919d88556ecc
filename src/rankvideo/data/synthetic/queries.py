"""Queries of the embedded benchmark and their graded judgments.

A query names an event (the anchor: the kind of event, usually with its place) and adds one or two
constraints. Which constraints a query can carry depends on the evidence the query writer saw,
mirroring the paper's five evidence variants (section 3.2):

- ``caption``: visual facts: attributes, motion, order of appearance, counts, size comparison,
  absence (negation). These are the reasoning-intensive queries: only the frames answer them.
- ``ocr``: a word written on screen (answerable from the frames, invisible to the first stage).
- ``asr``: something the narrator talks about.
- ``metadata``: what the title says.
- ``all``: a visual fact plus the on-screen word or a spoken detail.

Constraints are built from the source video's ground truth, so the source is always fully
relevant; every other video is judged from its own ground truth with the same predicate.

Grades (0-3), linear gain as trec_eval:
3  the anchor matches and every constraint holds;
2  the anchor matches, one constraint holds fully and every other at least partially;
1  the anchor matches and some constraint holds, fully or partially (right objects, wrong order; count of a
   shape off by one; right object, wrong motion...);
0  otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .scenes import COLOURS, SHAPES, Scene

VARIANTS = ("caption", "asr", "ocr", "metadata", "all")
VISUAL_KINDS = ("attribute", "motion", "order", "count", "comparison", "negation")


@dataclass(frozen=True)
class Constraint:
    kind: str  # attribute | motion | order | count | comparison | negation | ocr | detail
    args: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.args}

    @staticmethod
    def from_dict(d: dict) -> "Constraint":
        d = dict(d)
        return Constraint(kind=d.pop("kind"), args=d)


@dataclass(frozen=True)
class VideoTruth:
    """What relevance is judged on: the event and the scene, never the text proxies."""

    kind: str
    place: str
    details: tuple[str, ...]
    scene: Scene


def _find(scene: Scene, shape: str, colour: str):
    for o in scene.objects:
        if o.shape == shape and o.colour == colour:
            return o
    return None


def satisfies(c: Constraint, truth: VideoTruth) -> float:
    """1.0 if the constraint holds, 0.5 if it holds partially, 0.0 otherwise."""
    a, scene = c.args, truth.scene
    if c.kind == "attribute":
        o = _find(scene, a["shape"], a["colour"])
        return 0.0 if o is None else (1.0 if o.size == a["size"] else 0.5)
    if c.kind == "motion":
        o = _find(scene, a["shape"], a["colour"])
        return 0.0 if o is None else (1.0 if o.motion == a["motion"] else 0.5)
    if c.kind == "order":
        first, second = _find(scene, a["shape1"], a["colour1"]), _find(scene, a["shape2"], a["colour2"])
        if first is None or second is None:
            return 0.0
        return 1.0 if first.appear < second.appear else 0.5
    if c.kind == "count":
        if a.get("shape"):
            n = sum(o.shape == a["shape"] for o in scene.objects)
        else:
            n = len(scene.objects)
        if n == a["n"]:
            return 1.0
        # Off by one counts as a partial match only when counting one kind of shape: for the
        # total count nearly every clip is within one, which would make the partial grade noise.
        return 0.5 if a.get("shape") and abs(n - a["n"]) == 1 else 0.0
    if c.kind == "comparison":
        big, small = _find(scene, a["shape1"], a["colour1"]), _find(scene, a["shape2"], a["colour2"])
        if big is None or small is None:
            return 0.0
        return 1.0 if (big.size == "large" and small.size == "small") else 0.5
    if c.kind == "negation":
        o = _find(scene, a["shape"], a["colour"])
        if o is None:
            return 0.0
        absent = all(x.colour != a["absent_colour"] for x in scene.objects)
        return 1.0 if absent else 0.5
    if c.kind == "ocr":
        return 1.0 if scene.text is not None and scene.text.word == a["word"] else 0.0
    if c.kind == "detail":
        return 1.0 if a["detail"] in truth.details else 0.0
    raise ValueError(f"unknown constraint kind {c.kind!r}")


@dataclass(frozen=True)
class QuerySpec:
    qid: str
    text: str
    variant: str
    qtype: str  # the main constraint kind, for per-type analysis
    source_doc: str
    kind: str
    place: str | None  # None when the query names only the kind of event
    constraints: tuple[Constraint, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["constraints"] = [c.to_dict() for c in self.constraints]
        return d


def grade(q: QuerySpec, truth: VideoTruth) -> int:
    if truth.kind != q.kind:
        return 0
    scores = [satisfies(c, truth) for c in q.constraints]
    if q.place is not None and q.place != truth.place:
        return 0
    if all(s == 1.0 for s in scores):
        return 3
    if any(s == 1.0 for s in scores) and all(s > 0 for s in scores):
        return 2
    if any(s > 0 for s in scores):
        return 1
    return 0


# --- sampling -------------------------------------------------------------------------------


def _obj_phrase(o, with_size: bool = False) -> str:
    return f"{o.size} {o.colour} {o.shape}" if with_size else f"{o.colour} {o.shape}"


def _visual_constraint(kind: str, scene: Scene, rng: np.random.Generator) -> tuple[Constraint, str] | None:
    """A true visual constraint of `scene` of the given kind and its phrase, or None if the
    scene cannot support that kind (e.g. order needs two objects)."""
    objs = list(scene.objects)
    pick = lambda: objs[int(rng.integers(len(objs)))]  # noqa: E731
    if kind == "attribute":
        o = pick()
        return Constraint("attribute", {"shape": o.shape, "colour": o.colour, "size": o.size}), f"showing a {_obj_phrase(o, True)}"
    if kind == "motion":
        o = pick()
        verb = "standing still" if o.motion == "static" else f"moving {o.motion}"
        return Constraint("motion", {"shape": o.shape, "colour": o.colour, "motion": o.motion}), f"with a {_obj_phrase(o)} {verb}"
    if kind == "order":
        if len(objs) < 2:
            return None
        i, j = sorted(rng.choice(len(objs), size=2, replace=False))
        a, b = objs[int(i)], objs[int(j)]  # objects are sorted by appearance
        c = Constraint("order", {"shape1": a.shape, "colour1": a.colour, "shape2": b.shape, "colour2": b.colour})
        if rng.random() < 0.5:
            return c, f"where a {_obj_phrase(a)} appears before a {_obj_phrase(b)}"
        return c, f"where the {_obj_phrase(b)} shows up after the {_obj_phrase(a)}"
    if kind == "count":
        shapes = [o.shape for o in objs]
        repeated = [s for s in SHAPES if shapes.count(s) >= 2]
        if repeated and rng.random() < 0.5:
            s = repeated[int(rng.integers(len(repeated)))]
            n = shapes.count(s)
            return Constraint("count", {"n": n, "shape": s}), f"with exactly {_number(n)} {s}s"
        n = len(objs)
        return Constraint("count", {"n": n, "shape": None}), f"with exactly {_number(n)} shape{'s' if n > 1 else ''} in total"
    if kind == "comparison":
        large = [o for o in objs if o.size == "large"]
        small = [o for o in objs if o.size == "small"]
        if not large or not small:
            return None
        a, b = large[int(rng.integers(len(large)))], small[int(rng.integers(len(small)))]
        c = Constraint("comparison", {"shape1": a.shape, "colour1": a.colour, "shape2": b.shape, "colour2": b.colour})
        return c, f"where the {_obj_phrase(a)} is bigger than the {_obj_phrase(b)}"
    if kind == "negation":
        o = pick()
        present = {x.colour for x in objs}
        absent = [c for c in COLOURS if c not in present]
        if not absent:
            return None
        col = absent[int(rng.integers(len(absent)))]
        return Constraint("negation", {"shape": o.shape, "colour": o.colour, "absent_colour": col}), f"with a {_obj_phrase(o)} and nothing {col}"
    raise ValueError(kind)


def _number(n: int) -> str:
    return ["zero", "one", "two", "three", "four", "five", "six"][n] if 0 <= n <= 6 else str(n)


def sample_query(
    qid: str,
    variant: str,
    doc_id: str,
    truth: VideoTruth,
    rng: np.random.Generator,
    *,
    qtype_weights: dict[str, float],
    place_rate: float,
) -> QuerySpec | None:
    """One query written from `doc_id`'s evidence under `variant`; None if this video cannot
    support the variant (e.g. OCR without on-screen text)."""
    scene = truth.scene
    constraints: list[Constraint] = []
    phrases: list[str] = []

    def visual() -> str | None:
        kinds = list(qtype_weights)
        w = np.array([qtype_weights[k] for k in kinds], dtype=float)
        order = rng.choice(len(kinds), size=len(kinds), replace=False, p=w / w.sum())
        for k in order:  # fall back to another kind the scene supports
            got = _visual_constraint(kinds[int(k)], scene, rng)
            if got:
                constraints.append(got[0])
                phrases.append(got[1])
                return kinds[int(k)]
        return None

    if variant == "caption":
        qtype = visual()
    elif variant == "ocr":
        if scene.text is None:
            return None
        constraints.append(Constraint("ocr", {"word": scene.text.word}))
        phrases.append(str(rng.choice([f"with the word {scene.text.word} on screen", f"where the screen reads {scene.text.word}"])))
        qtype = "ocr"
    elif variant in ("asr", "metadata"):
        if not truth.details:
            return None
        d = truth.details[0] if variant == "metadata" else truth.details[int(rng.integers(len(truth.details)))]
        constraints.append(Constraint("detail", {"detail": d}))
        phrases.append(f"showing {d}" if variant == "metadata" else f"where the reporter talks about {d}")
        qtype = "detail"
    elif variant == "all":
        qtype = visual()
        # The second constraint prefers on-screen text over a spoken detail: "all" queries are
        # meant to need the frames, and a spoken detail is something the first stage can match.
        if scene.text is not None and rng.random() < 0.75:
            constraints.append(Constraint("ocr", {"word": scene.text.word}))
            phrases.append(f"and the word {scene.text.word} on screen")
        elif truth.details:
            d = truth.details[int(rng.integers(len(truth.details)))]
            constraints.append(Constraint("detail", {"detail": d}))
            phrases.append(f"while the reporter mentions {d}")
    else:
        raise ValueError(f"unknown evidence variant {variant!r}; expected one of {VARIANTS}")
    if qtype is None:
        return None
    place = truth.place if rng.random() < place_rate else None
    anchor = f"{truth.kind} in {place}" if place else f"a {truth.kind}"
    lead = str(rng.choice(["Video of", "Footage of", "Find the clip of", "News video of"]))
    text = f"{lead} {anchor} {' '.join(phrases)}"
    return QuerySpec(
        qid=qid,
        text=text,
        variant=variant,
        qtype=qtype,
        source_doc=doc_id,
        kind=truth.kind,
        place=place,
        constraints=tuple(constraints),
    )
