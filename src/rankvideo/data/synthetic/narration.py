"""A spoken narration track for the embedded world's clips (`data.narration.enabled`), so that
real speech recognition has something to hear: the narrator says the clip's transcript (the
templated ASR proxy: the place, the kind of event, the spoken details), synthesised by a
text-to-speech program from Debian:

- `flite` (`apt-get install flite`), the default: PocketSphinx hears its voice far better (a word
  error rate near 0.2 against above 0.8 for espeak-ng's on the same sentences; docs/findings.md);
- `espeak-ng` (`apt-get install espeak-ng`).

Both are deterministic: the same text gives the same samples, so a narrated benchmark is still a
pure function of its config. The narration may run longer than the clip's pictures; the sound
track is then longer than the video stream (both are kept whole).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass

import numpy as np

ENGINES = ("espeak-ng", "flite")
APT = {"espeak-ng": "apt-get install espeak-ng", "flite": "apt-get install flite"}


class NarrationToolError(RuntimeError):
    """The configured speech synthesiser is not installed; the message names the apt line."""


@dataclass(frozen=True)
class NarrationSpec:
    enabled: bool = False
    engine: str = "flite"
    voice: str = "en-us"          # espeak-ng voice (flite: its built-in voice; ignored)
    words_per_minute: int = 150   # espeak-ng speed (flite: ignored)

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"data.narration.engine={self.engine!r}: choose from {list(ENGINES)}")
        if not 80 <= int(self.words_per_minute) <= 450:
            raise ValueError(f"data.narration.words_per_minute={self.words_per_minute!r}: must be in [80, 450]")

    def check_tool(self) -> str:
        exe = shutil.which(self.engine)
        if exe is None:
            raise NarrationToolError(f"data.narration.enabled=true needs the {self.engine} program, which is not "
                                     f"installed: {APT[self.engine]} (Debian/Ubuntu); or set data.narration.enabled=false")
        return exe


def speak(text: str, spec: NarrationSpec) -> tuple[np.ndarray, int]:
    """(int16 mono samples, sample rate) of `text` spoken by `spec.engine`."""
    exe = spec.check_tool()
    with tempfile.TemporaryDirectory(prefix="narration-") as tmp:
        wav = os.path.join(tmp, "speech.wav")
        if spec.engine == "espeak-ng":
            cmd = [exe, "-v", str(spec.voice), "-s", str(int(spec.words_per_minute)), "-w", wav, "--", text]
        else:
            cmd = [exe, "-t", text, "-o", wav]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"{spec.engine} failed on {text!r} (exit {done.returncode}): {done.stderr.strip()[:300]}")
        with wave.open(wav, "rb") as w:
            if w.getsampwidth() != 2:
                raise RuntimeError(f"{spec.engine} wrote {8 * w.getsampwidth()}-bit audio; expected 16-bit")
            rate, channels = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if pcm.size == 0:
        raise RuntimeError(f"{spec.engine} produced no audio for {text!r}")
    return pcm.astype(np.int16), int(rate)
