"""Text proxies of real videos (the paper's section 3.1, step 1): captions from a vision-language
model, speech transcripts, on-screen text. `extract.extract_proxies` runs the three backends over a
folder of videos and writes `captions.jsonl`, `asr.jsonl` and `ocr.jsonl` (`{doc_id, text}`), the
files `data=multivent2` reads (`data.captions`, `data.asr`, `data.ocr`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping


class MissingToolError(RuntimeError):
    """An optional tool or package a configured backend needs is not installed; the message names
    the install command."""


def make_backend(cfg: Mapping, group: str, backends: Mapping[str, Callable], stage_keys: tuple[str, ...] = ()):
    """The backend of config group `group` named by `cfg["name"]`, built from the node's other keys
    (less `stage_keys`, which the stage reads itself), or None for `none`; an unknown name is refused
    with the choices."""
    name = str(cfg.get("name", "none"))
    if name == "none":
        return None
    if name not in backends:
        raise ValueError(f"proxies.{group}.name={name!r}: unknown ({' | '.join([*backends, 'none'])})")
    return backends[name](**{k: v for k, v in dict(cfg).items() if k not in ("name", *stage_keys)})
