"""The real offline tools on one narrated clip with a known text and word (skipped where a tool is
not installed: CI has none of them), and the errors that name the install line when one is missing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rankvideo.data.synthetic.narration import NarrationSpec, NarrationToolError, speak
from rankvideo.data.synthetic.scenes import render, sample_scene
from rankvideo.data.video import read_clip, write_video
from rankvideo.proxies import MissingToolError
from rankvideo.proxies.metrics import ocr_hit, word_error_rate, words

NARRATION = "We are live in Porto covering the wildfire. People talk about firefighter crews."


def _narrated_clip(tmp_path, word="FLOOD"):
    rng = np.random.default_rng(3)
    scene = sample_scene(rng, width=96, height=96, fps=8, seconds=3.0, max_objects=2, text_words=[word], text_rate=1.0,
                         kind_index=0, place_index=-1)
    audio, rate = speak(NARRATION, NarrationSpec(enabled=True))
    path = tmp_path / "narrated.mp4"
    write_video(path, render(scene), fps=8, audio=audio, audio_rate=rate)
    return path


needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (apt-get install flite)")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed (apt-get install tesseract-ocr)")


@needs_flite
def test_pocketsphinx_hears_the_narration(tmp_path):
    pytest.importorskip("pocketsphinx")
    from rankvideo.proxies.asr import make_asr, transcribe_video

    text = transcribe_video(make_asr({"name": "pocketsphinx"}), str(_narrated_clip(tmp_path)))
    # Real, imperfect speech recognition of synthetic speech: most words come through.
    assert word_error_rate(NARRATION, text) < 0.5, text
    assert {"live", "porto", "wildfire", "people", "talk", "about"} <= set(words(text)), text


@needs_tesseract
def test_tesseract_reads_the_on_screen_word(tmp_path):
    pytest.importorskip("pytesseract")
    from rankvideo.proxies.ocr import make_ocr, ocr_frames

    rng = np.random.default_rng(3)
    scene = sample_scene(rng, width=96, height=96, fps=8, seconds=3.0, max_objects=2, text_words=["FLOOD"], text_rate=1.0,
                         kind_index=0, place_index=-1)
    path = tmp_path / "word.mp4"
    write_video(path, render(scene), fps=8)
    clip = read_clip(str(path), fps=1.0, max_frames=4)
    assert ocr_hit("FLOOD", ocr_frames(make_ocr({"name": "tesseract"}), clip.frames))


def test_a_missing_speech_synthesiser_names_its_apt_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(NarrationToolError, match="apt-get install flite"):
        speak("hello", NarrationSpec(enabled=True))
    with pytest.raises(NarrationToolError, match="apt-get install espeak-ng"):
        NarrationSpec(enabled=True, engine="espeak-ng").check_tool()


def test_a_missing_tesseract_names_its_apt_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    from rankvideo.proxies.ocr import make_ocr

    with pytest.raises(MissingToolError, match="apt-get install tesseract-ocr"):
        make_ocr({"name": "tesseract"})


def test_unknown_backends_and_missing_optional_packages_are_clear(monkeypatch):
    import builtins

    from rankvideo.proxies.asr import make_asr
    from rankvideo.proxies.captioner import make_captioner
    from rankvideo.proxies.ocr import make_ocr

    with pytest.raises(ValueError, match="pocketsphinx | whisper | none"):
        make_asr({"name": "kaldi"})
    with pytest.raises(ValueError, match="tesseract | easyocr | none"):
        make_ocr({"name": "abbyy"})
    with pytest.raises(ValueError, match="proxies.captioner.path is required"):
        make_captioner({"name": "hf", "path": "???"})
    assert make_asr({"name": "none"}) is None and make_ocr({"name": "none"}) is None
    assert make_captioner({"name": "none"}) is None

    real_import = builtins.__import__

    def no_optional(name, *args, **kwargs):
        if name.split(".")[0] in ("vllm", "faster_whisper", "easyocr"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optional)
    with pytest.raises(MissingToolError, match="pip install vllm"):
        make_captioner({"name": "vllm", "path": "some/model"})
    with pytest.raises(MissingToolError, match="pip install faster-whisper"):
        make_asr({"name": "whisper"})
    with pytest.raises(MissingToolError, match="pip install easyocr"):
        make_ocr({"name": "easyocr"})
