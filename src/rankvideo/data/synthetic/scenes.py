"""The visual world of the embedded benchmark: scripted scenes and their rendering.

A scene is a short clip of coloured shapes on a plain background. Each object has a shape, a
colour and a size, enters the clip at its own time (so objects have an order of appearance) and
then moves (left to right, right to left, up, down) or stays still. Some clips also show a word
of on-screen text for part of the clip, like a news ticker. Everything a query can ask about
(attributes, motion, order, counts, size comparison, absence, on-screen text) is stored as
ground-truth facts next to the pixels, so relevance is judged from the truth, never from the
noisy text proxies.

Rendering draws with Pillow and is a pure function of the scene: the same scene gives the same
frames, so the same seed gives the same mp4 bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "white": (240, 240, 240),
}
SIZES = ("small", "large")
MOTIONS = ("left to right", "right to left", "upward", "downward", "static")


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    motion: str
    appear: float  # seconds after the clip starts when the object first becomes visible

    def describe(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class OnScreenText:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Scene:
    """Ground truth of one clip. `objects` are sorted by appearance time."""

    objects: tuple[SceneObject, ...]
    text: OnScreenText | None
    background: tuple[int, int, int]
    seconds: float
    fps: int
    width: int
    height: int
    # Start positions and offsets are sampled once so rendering stays a pure function.
    starts: tuple[tuple[float, float], ...] = field(default=())
    # The setting, what a viewer would recognise as the kind of event (flood water, smoke...):
    # a background stripe texture per kind of event (-1: plain background).
    kind_index: int = -1
    # A landmark: a 3x3 emblem in the top-left corner identifying the place (-1: none shown).
    place_index: int = -1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objects"] = [asdict(o) for o in self.objects]
        d["text"] = asdict(self.text) if self.text else None
        return d

    @staticmethod
    def from_dict(d: dict) -> "Scene":
        return Scene(
            objects=tuple(SceneObject(**o) for o in d["objects"]),
            text=OnScreenText(**d["text"]) if d.get("text") else None,
            background=tuple(d["background"]),
            seconds=float(d["seconds"]),
            fps=int(d["fps"]),
            width=int(d["width"]),
            height=int(d["height"]),
            starts=tuple(tuple(s) for s in d.get("starts", ())),
            kind_index=int(d.get("kind_index", -1)),
            place_index=int(d.get("place_index", -1)),
        )


def _radius(size: str, width: int) -> float:
    # Sizes are relative to the frame so that other resolutions keep the same look.
    return width * (0.09 if size == "small" else 0.17)


def sample_scene(
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    fps: int,
    seconds: float,
    max_objects: int,
    text_words: list[str],
    text_rate: float,
    kind_index: int = -1,
    place_index: int = -1,
) -> Scene:
    """Sample a scene: 1..max_objects objects with distinct (shape, colour), staggered entries
    (fewer than max_objects when the clip is too short to stagger that many 1 s apart)."""
    # Entry times are spread over the first two thirds of the clip and kept at least 1 s apart,
    # so at 2 fps sampling the order of appearance is always visible in the frames.
    slots = np.arange(0.0, seconds * 2 / 3, 1.0)
    n = min(int(rng.integers(1, max_objects + 1)), len(slots))
    combos = [(s, c) for s in SHAPES for c in COLOURS]
    picks = rng.choice(len(combos), size=n, replace=False)
    entry = np.sort(rng.choice(slots, size=n, replace=False)) + rng.uniform(0, 0.3, size=n)
    entry[0] = 0.0 if rng.random() < 0.5 else entry[0]
    objects = []
    starts = []
    for k, idx in enumerate(picks):
        shape, colour = combos[int(idx)]
        obj = SceneObject(
            shape=shape,
            colour=colour,
            size=str(rng.choice(SIZES)),
            motion=str(rng.choice(MOTIONS)),
            appear=round(float(entry[k]), 2),
        )
        objects.append(obj)
        starts.append((float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.7))))
    text = None
    if text_words and rng.random() < text_rate:
        start = round(float(rng.uniform(0.0, seconds / 3)), 2)
        text = OnScreenText(word=str(rng.choice(text_words)), start=start, end=round(min(seconds, start + seconds / 2 + 1), 2))
    grey = int(rng.integers(20, 70))
    tint = rng.integers(-12, 13, size=3)
    background = tuple(int(np.clip(grey + t, 0, 255)) for t in tint)
    return Scene(
        objects=tuple(objects),
        text=text,
        background=background,
        seconds=float(seconds),
        fps=int(fps),
        width=int(width),
        height=int(height),
        starts=tuple(starts),
        kind_index=kind_index,
        place_index=place_index,
    )


def _position(obj: SceneObject, start: tuple[float, float], t: float, scene: Scene) -> tuple[float, float]:
    """Centre of an object at time t, in pixels. Moving objects cross most of the frame."""
    w, h = scene.width, scene.height
    span = max(scene.seconds - obj.appear, 1e-6)
    u = min(max((t - obj.appear) / span, 0.0), 1.0)
    x0, y0 = start[0] * w, start[1] * (h * 0.8)  # keep the bottom strip free for on-screen text
    lo, hi = 0.12, 0.88
    if obj.motion == "left to right":
        return (lo + (hi - lo) * u) * w, y0
    if obj.motion == "right to left":
        return (hi - (hi - lo) * u) * w, y0
    if obj.motion == "upward":
        return x0, (0.7 - 0.55 * u) * h
    if obj.motion == "downward":
        return x0, (0.12 + 0.55 * u) * h
    return x0, y0


def _texture(scene: Scene) -> np.ndarray | None:
    """Boolean stripe mask of the scene's kind of event: 4 orientations x 3 periods, so up to 12
    kinds look different. Low contrast, so the shapes stay the salient thing in the frame."""
    if scene.kind_index < 0:
        return None
    orientation, period = scene.kind_index % 4, (0.06, 0.11, 0.18)[(scene.kind_index // 4) % 3] * scene.width
    yy, xx = np.mgrid[0 : scene.height, 0 : scene.width]
    coord = (yy, xx, xx + yy, xx - yy + scene.height)[orientation]
    return (coord // max(period / 2, 1)) % 2 == 1


def emblem_bits(place_index: int) -> list[int]:
    """The 3x3 landmark pattern of a place: 9 bits, distinct for up to 511 places (37 is coprime
    with 511), never all off."""
    code = (place_index * 37 + 11) % 511 + 1
    return [(code >> b) & 1 for b in range(9)]


def _draw_emblem(draw: ImageDraw.ImageDraw, scene: Scene) -> None:
    cell = max(2, round(scene.width * 0.06))
    x0 = y0 = max(1, round(scene.width * 0.02))
    draw.rectangle((x0, y0, x0 + 3 * cell - 1, y0 + 3 * cell - 1), fill=(0, 0, 0))
    for b, on in enumerate(emblem_bits(scene.place_index)):
        if on:
            cx, cy = x0 + (b % 3) * cell, y0 + (b // 3) * cell
            draw.rectangle((cx, cy, cx + cell - 1, cy + cell - 1), fill=(210, 210, 210))


def _font(height: int) -> ImageFont.ImageFont:
    # Pillow ships a scalable default font (needs FreeType, which its wheels include).
    return ImageFont.load_default(size=max(8, int(height * 0.15)))


def render(scene: Scene) -> np.ndarray:
    """Frames of the scene as uint8 [T, H, W, 3]."""
    n_frames = int(round(scene.seconds * scene.fps))
    font = _font(scene.height) if scene.text else None
    frames = np.empty((n_frames, scene.height, scene.width, 3), dtype=np.uint8)
    base = np.empty((scene.height, scene.width, 3), dtype=np.uint8)
    base[:] = scene.background
    mask = _texture(scene)
    if mask is not None:
        base[mask] = np.clip(np.asarray(scene.background) + 28, 0, 255)
    for i in range(n_frames):
        t = i / scene.fps
        img = Image.fromarray(base)
        draw = ImageDraw.Draw(img)
        if scene.place_index >= 0:
            _draw_emblem(draw, scene)
        for obj, start in zip(scene.objects, scene.starts):
            if t < obj.appear:
                continue
            cx, cy = _position(obj, start, t, scene)
            r = _radius(obj.size, scene.width)
            fill = COLOURS[obj.colour]
            if obj.shape == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            elif obj.shape == "square":
                draw.rectangle((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), fill=fill)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
        if scene.text and scene.text.start <= t < scene.text.end:
            draw.rectangle((0, scene.height * 0.8, scene.width, scene.height), fill=(0, 0, 0))
            draw.text((scene.width / 2, scene.height * 0.9), scene.text.word, fill=(255, 255, 255), font=font, anchor="mm")
        frames[i] = np.asarray(img)
    return frames
