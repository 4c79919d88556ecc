"""Speech transcripts of a video's audio track.

- `pocketsphinx` (offline default): CMU PocketSphinx with the US English model that ships inside
  its PyPI wheel (`pip install pocketsphinx`), no hub, no weights to fetch;
- `whisper`: faster-whisper (`pip install faster-whisper`) with a model by name or local folder
  (the paper uses Whisper large-v2), for users with weights;
- `none`: no transcripts.

The audio is decoded with PyAV and resampled to 16 kHz mono (what both recognisers expect). A video
without an audio stream gets an empty transcript (logged), not an error.
"""

from __future__ import annotations

import logging
from typing import Mapping

import av
import numpy as np

from ..data.video import _AV_ERRORS, VideoReadError, _check_file
from . import MissingToolError, make_backend

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


def extract_audio(path: str, rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray | None:
    """The first audio stream of `path` as int16 mono samples at `rate` Hz, or None when the file
    has no audio stream. A file that does not decode raises VideoReadError naming it."""
    path = str(path)
    _check_file(path)
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            chunks: list[np.ndarray] = []
            total = 0
            limit = None if max_seconds is None else int(max_seconds * rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if limit is not None and total >= limit:
                    break
            for out in resampler.resample(None):  # flush the resampler's delay
                chunks.append(out.to_ndarray().reshape(-1))
    except _AV_ERRORS as e:
        raise VideoReadError(f"audio of {path!r} could not be decoded ({type(e).__name__}: {e})") from e
    pcm = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    return pcm[:limit] if limit is not None else pcm


class PocketSphinxASR:
    """PocketSphinx with its bundled US English acoustic model, dictionary and language model."""

    name = "pocketsphinx"

    def __init__(self, chunk_seconds: float = 30.0, **decoder_options) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise MissingToolError("asr=pocketsphinx needs the pocketsphinx package: pip install pocketsphinx "
                                   "(or pip install -c constraints.txt '.[proxies]')") from None
        self.decoder = Decoder(samprate=SAMPLE_RATE, logfn="/dev/null", **decoder_options)
        self.chunk = int(chunk_seconds * SAMPLE_RATE)

    def transcribe(self, pcm: np.ndarray) -> str:
        words: list[str] = []
        # Long audio in fixed chunks: one utterance over a whole newscast is slow and drifts.
        for start in range(0, len(pcm), self.chunk):
            self.decoder.start_utt()
            self.decoder.process_raw(np.ascontiguousarray(pcm[start:start + self.chunk], dtype=np.int16).tobytes(),
                                     full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
            if hyp is not None and hyp.hypstr:
                words.append(hyp.hypstr)
        return " ".join(words).strip()


class WhisperASR:
    """faster-whisper (CTranslate2). `model` is a size name (`large-v2`, the paper's) or a local
    folder of converted weights."""

    name = "whisper"

    def __init__(self, model: str = "large-v2", device: str = "auto", compute_type: str = "default",
                 language: str | None = None, beam_size: int = 5) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise MissingToolError("asr=whisper needs faster-whisper: pip install faster-whisper "
                                   "(and its model weights, by name from a hub or as a local folder: asr.model=PATH)") from None
        self.model = WhisperModel(str(model), device=device, compute_type=compute_type)
        self.language, self.beam_size = language, int(beam_size)

    def transcribe(self, pcm: np.ndarray) -> str:
        audio = pcm.astype(np.float32) / 32768.0
        segments, _ = self.model.transcribe(audio, language=self.language, beam_size=self.beam_size)
        return " ".join(s.text.strip() for s in segments).strip()


def make_asr(cfg: Mapping):
    """The recogniser named by `cfg["name"]` (an `asr` config node), or None for `none`."""
    return make_backend(cfg, "asr", {"pocketsphinx": PocketSphinxASR, "whisper": WhisperASR}, ("max_seconds",))


def transcribe_video(asr, path: str, max_seconds: float | None = None) -> str:
    """The transcript of `path`'s audio; empty (and logged) when the video has no audio stream."""
    pcm = extract_audio(path, max_seconds=max_seconds)
    if pcm is None:
        log.info("%s: no audio stream; empty transcript", path)
        return ""
    if pcm.size == 0:
        log.info("%s: audio stream without samples; empty transcript", path)
        return ""
    return asr.transcribe(pcm)
