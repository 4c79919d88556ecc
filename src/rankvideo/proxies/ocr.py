"""On-screen text of a video: OCR of sampled frames, lines deduplicated across frames.

- `tesseract`: Debian's Tesseract (`apt-get install tesseract-ocr`) through the `pytesseract`
  wrapper (`pip install pytesseract`);
- `easyocr`: EasyOCR (`pip install easyocr`) with its English weights in a local folder
  (`ocr.model_dir`; it never downloads here);
- `none`: no OCR.

Frames are sampled with the project's reader (`read_clip`, `ocr.fps`, at most `ocr.max_frames`),
upscaled by `ocr.upscale` (small frames such as the embedded world's 96x96 clips are below what
Tesseract reads) and converted to grey. A caption or ticker stays on screen for many frames, so
lines are normalised and each kept once, in order of first appearance.
"""

from __future__ import annotations

import re
import shutil
from typing import Iterable, Mapping

import numpy as np

from . import MissingToolError, make_backend

_SPACE = re.compile(r"\s+")
_WORDISH = re.compile(r"[^\W_]", re.UNICODE)


def normalise_line(line: str) -> str:
    """A line with runs of white space collapsed and stray edge punctuation (OCR noise from frame
    borders: `|`, `_`, `~`, quotes) removed."""
    line = _SPACE.sub(" ", line).strip()
    return line.strip(" |_~`'\"-.,:;!")


def clean_lines(raw_texts: Iterable[str], min_chars: int = 2) -> list[str]:
    """Lines of the OCR output of several frames: normalised, without lines that have fewer than
    `min_chars` letters or digits, each kept once (case-insensitive), in order of first sighting."""
    seen: set[str] = set()
    out: list[str] = []
    for text in raw_texts:
        for line in (text or "").splitlines():
            line = normalise_line(line)
            if len(_WORDISH.findall(line)) < min_chars:
                continue
            key = line.casefold()
            if key not in seen:
                seen.add(key)
                out.append(line)
    return out


def _prepare(frame: np.ndarray, upscale: int):
    from PIL import Image

    img = Image.fromarray(np.asarray(frame, dtype=np.uint8)).convert("L")
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.Resampling.BICUBIC)
    return img


class TesseractOCR:
    name = "tesseract"

    def __init__(self, lang: str = "eng", psm: int = 11, upscale: int = 4, binary: str = "tesseract") -> None:
        exe = shutil.which(binary)
        if exe is None:
            raise MissingToolError(f"ocr=tesseract needs the Tesseract program ({binary!r} is not on PATH): "
                                   "apt-get install tesseract-ocr (Debian/Ubuntu); or choose proxies/ocr=easyocr or none")
        try:
            import pytesseract
        except ImportError:
            raise MissingToolError("ocr=tesseract needs the pytesseract wrapper: pip install pytesseract "
                                   "(or pip install -c constraints.txt '.[proxies]')") from None
        pytesseract.pytesseract.tesseract_cmd = exe
        self._tess = pytesseract
        # psm 11: sparse text, no page layout assumed (a ticker, a sign in a frame).
        self.lang, self.config, self.upscale = str(lang), f"--psm {int(psm)}", int(upscale)

    def read(self, frame: np.ndarray) -> str:
        return self._tess.image_to_string(_prepare(frame, self.upscale), lang=self.lang, config=self.config)


class EasyOCR:
    name = "easyocr"

    def __init__(self, lang: str = "en", model_dir: str | None = None, upscale: int = 2, gpu: bool = False) -> None:
        try:
            import easyocr
        except ImportError:
            raise MissingToolError("ocr=easyocr needs the easyocr package: pip install easyocr, and its English "
                                   "weights in a local folder (proxies.ocr.model_dir)") from None
        self.reader = easyocr.Reader([lang], gpu=bool(gpu), model_storage_directory=model_dir, download_enabled=False)
        self.upscale = int(upscale)

    def read(self, frame: np.ndarray) -> str:
        img = np.asarray(_prepare(frame, self.upscale))
        return "\n".join(self.reader.readtext(img, detail=0, paragraph=False))


def make_ocr(cfg: Mapping):
    """The OCR engine named by `cfg["name"]` (an `ocr` config node), or None for `none`."""
    return make_backend(cfg, "ocr", {"tesseract": TesseractOCR, "easyocr": EasyOCR}, ("fps", "max_frames", "min_chars"))


def ocr_frames(engine, frames: np.ndarray, min_chars: int = 2) -> str:
    """The deduplicated lines of every frame, one per line."""
    return "\n".join(clean_lines((engine.read(f) for f in frames), min_chars=min_chars))
