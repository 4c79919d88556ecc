"""Audio for speech recognition: PyAV decode, resampled to 16 kHz mono; no audio stream -> empty."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rankvideo.data.video import VideoReadError, write_video
from rankvideo.proxies.asr import SAMPLE_RATE, extract_audio, transcribe_video


def _frames(n=16):
    return np.full((n, 32, 32, 3), 80, np.uint8)


def _tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_a_tone_comes_back_at_16khz_mono_with_its_frequency(tmp_path):
    path = tmp_path / "tone.mp4"
    # 22.05 kHz (espeak-ng's rate) in, 16 kHz out
    write_video(path, _frames(), 8, audio=_tone(440.0, 2.0, 22050), audio_rate=22050)
    pcm = extract_audio(str(path))
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert abs(pcm.size / SAMPLE_RATE - 2.0) < 0.1  # 2 s (AAC adds at most a frame of padding)
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / pcm.size - 440.0) < 2.0
    assert extract_audio(str(path), max_seconds=0.5).size == SAMPLE_RATE // 2


def test_writing_with_a_sound_track_is_deterministic_and_without_one_unchanged(tmp_path):
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    write_video(a, _frames(), 8, audio=_tone(300.0, 1.0, 16000))
    write_video(b, _frames(), 8, audio=_tone(300.0, 1.0, 16000))
    write_video(c, _frames(), 8)
    assert a.read_bytes() == b.read_bytes()
    assert extract_audio(str(c)) is None


def test_a_video_without_audio_gets_an_empty_transcript_logged(tmp_path, caplog):
    path = tmp_path / "silent.mp4"
    write_video(path, _frames(), 8)

    class NeverCalled:
        def transcribe(self, pcm):
            raise AssertionError("no audio: the recogniser must not run")

    with caplog.at_level(logging.INFO, logger="rankvideo.proxies.asr"):
        assert transcribe_video(NeverCalled(), str(path)) == ""
    assert "no audio stream" in caplog.text and "silent.mp4" in caplog.text


def test_an_unreadable_file_is_a_video_read_error_naming_it(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        extract_audio(str(bad))
    with pytest.raises(VideoReadError, match="does not exist"):
        extract_audio(str(tmp_path / "absent.mp4"))
