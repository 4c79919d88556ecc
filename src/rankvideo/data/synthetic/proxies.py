"""Text proxies of a video, as the paper builds them (section 3.1): a caption from a captioning
model, OCR of on-screen text, an ASR transcript of the narration, and upload metadata.

Each proxy is written the way its real source behaves:
- caption: the visual facts, but a captioner omits some and gets some wrong (rates in config);
- OCR: the words on screen, with occasional character errors;
- ASR: what a narrator says about the event: the place, the kind of event and the spoken details,
  sometimes off-topic chatter instead;
- metadata: a title and a description that are partial and sometimes misleading (a re-upload
  titled after another event, a description that names a wrong colour).
Proxies feed the first stage (metadata + ASR) and the teacher (caption + ASR); relevance is never
judged from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenes import COLOURS, MOTIONS, SHAPES, Scene, SceneObject
from .world import EVENT_KINDS, PLACES, Event

ORDINALS = ["First", "Then", "After that", "Finally"]


@dataclass(frozen=True)
class ProxyConfig:
    caption_omission_rate: float = 0.2
    caption_mistake_rate: float = 0.1
    ocr_error_rate: float = 0.05
    asr_offtopic_rate: float = 0.1
    title_misleading_rate: float = 0.1
    title_partial_rate: float = 0.3
    description_visual_rate: float = 0.3
    description_mistake_rate: float = 0.3


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def _motion_phrase(motion: str) -> str:
    return "stays still" if motion == "static" else f"moves {motion}"


def _maybe_wrong(rng: np.random.Generator, value: str, choices, rate: float) -> str:
    if rng.random() < rate:
        others = [c for c in choices if c != value]
        return str(rng.choice(others))
    return value


def caption(scene: Scene, rng: np.random.Generator, cfg: ProxyConfig, kind: str | None = None) -> str:
    """3-6 factual sentences, like the paper's captioner, with omissions and mistakes."""
    sentences: list[str] = []
    kept = [o for o in scene.objects if rng.random() >= cfg.caption_omission_rate] or list(scene.objects[:1])
    for i, obj in enumerate(kept):
        colour = _maybe_wrong(rng, obj.colour, list(COLOURS), cfg.caption_mistake_rate)
        shape = _maybe_wrong(rng, obj.shape, SHAPES, cfg.caption_mistake_rate)
        motion = _maybe_wrong(rng, obj.motion, MOTIONS, cfg.caption_mistake_rate)
        size = "" if rng.random() < cfg.caption_omission_rate else f"{obj.size} "
        phrase = f"{size}{colour} {shape}"
        lead = ORDINALS[min(i, len(ORDINALS) - 1)] if len(kept) > 1 else "The video shows"
        if lead == "The video shows":
            sentences.append(f"The video shows {_article(phrase)} {phrase} that {_motion_phrase(motion)}.")
        else:
            sentences.append(f"{lead}, {_article(phrase)} {phrase} appears and {_motion_phrase(motion)}.")
    if rng.random() >= cfg.caption_omission_rate:
        n = len(scene.objects)
        if rng.random() < cfg.caption_mistake_rate:
            n = max(1, n + int(rng.choice([-1, 1])))
        sentences.append(f"In total {n} shape{'s' if n != 1 else ''} can be seen.")
    if scene.text and rng.random() >= cfg.caption_omission_rate:
        sentences.append(f"The word {scene.text.word} is written at the bottom of the screen.")
    if scene.kind_index < 0:
        sentences.append("The background is a plain dark colour.")
    if scene.place_index >= 0 and rng.random() >= cfg.caption_omission_rate:
        sentences.append("A small square emblem is shown in the top left corner.")
    if kind is not None and scene.kind_index >= 0 and rng.random() >= cfg.caption_omission_rate:
        # A captioner recognises the setting (flood water, smoke) but not the place.
        sentences.append(f"The setting looks like {_article(kind)} {kind}.")
    return " ".join(sentences)


def ocr(scene: Scene, rng: np.random.Generator, cfg: ProxyConfig) -> str:
    if scene.text is None:
        return ""
    word = list(scene.text.word)
    if rng.random() < cfg.ocr_error_rate:
        i = int(rng.integers(len(word)))
        word[i] = {"O": "0", "I": "1", "E": "F", "A": "4"}.get(word[i], "X")
    return "".join(word)


def asr(event: Event, details: list[str], rng: np.random.Generator, cfg: ProxyConfig) -> str:
    """A narrator's transcript. Off-topic narration (music, ads, chatter) happens in real uploads
    and is what makes some relevant videos hard for a text first stage."""
    if rng.random() < cfg.asr_offtopic_rate:
        return str(rng.choice([
            "Thanks for watching, please like and subscribe for more videos.",
            "Music playing. Applause. Music playing.",
            "Okay is this recording? Hello? Can you hear me now?",
        ]))
    opener = str(rng.choice([
        f"Reporting from {event.place}, where the {event.kind} continues today.",
        f"This is the scene in {event.place} after the {event.kind}.",
        f"We are live in {event.place} covering the {event.kind}.",
    ]))
    body = " ".join(f"{str(rng.choice(['We can see', 'People talk about', 'Reports mention']))} {d}." for d in details)
    return f"{opener} {body}"


def metadata(event: Event, details: list[str], scene: Scene, rng: np.random.Generator, cfg: ProxyConfig) -> tuple[str, str]:
    """(title, description). Titles are partial (no place) or misleading (another event)."""
    kind, place = event.kind, event.place
    if rng.random() < cfg.title_misleading_rate:
        kind = str(rng.choice(list(EVENT_KINDS)))
        place = str(rng.choice(PLACES))
    if rng.random() < cfg.title_partial_rate:
        title = str(rng.choice([f"{kind.capitalize()} footage", f"Amazing {kind} video", f"Live: {kind} update"]))
    else:
        title = f"{place} {kind}: {details[0]}" if details else f"{kind.capitalize()} in {place}"
    description = f"Video filmed in {event.place}."
    if scene.objects and rng.random() < cfg.description_visual_rate:
        obj: SceneObject = scene.objects[int(rng.integers(len(scene.objects)))]
        colour = _maybe_wrong(rng, obj.colour, list(COLOURS), cfg.description_mistake_rate)
        description += f" Watch for the {colour} {obj.shape}."
    return title, description
