"""Speech to timed text with faster-whisper (CTranslate2): int8 on CPU, float16 on CUDA by default."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsearch.config import SpeechSettings
from mmsearch.errors import ModelUnavailableError

SAMPLE_RATE = 16_000


Word = tuple[float, float, str]  # start and end in seconds from the file's start, the word as said


@dataclass(frozen=True)
class Utterance:
    t_start: float
    t_end: float
    text: str
    words: tuple[Word, ...] = ()  # each word's time, so a moment can be the words that matched


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def _threads(requested: int | None) -> int:
    """Half the usable cores, 1 to 4, unless set: the indexer encodes pictures meanwhile, and on 2 cores one
    thread transcribed JFK's address 1.4x and 27 s of speech 2x faster than CTranslate2's default of 4
    (docs/benchmarks.md)."""
    if requested is not None:
        return requested
    return max(1, min(4, len(os.sched_getaffinity(0)) // 2))


def _at(t: float, duration: float, offset: float) -> float:
    """A time in the audio, clipped to its end (Whisper pads to 30 s windows), from the file's start."""
    return round(float(min(t, duration)) + offset, 3)


class Transcriber:
    """Loads the Whisper model on first use and keeps it for the life of the worker."""

    def __init__(self, settings: SpeechSettings):
        self.settings = settings
        self._model = None

    def _load(self):
        from faster_whisper import WhisperModel

        s = self.settings
        device = _device(s.device)
        compute = s.compute_type if s.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
        local = Path(s.model).expanduser()
        if not local.is_dir():
            from mmsearch.encode.hub import offline_if_unreachable

            offline_if_unreachable()
        try:
            return WhisperModel(
                str(local) if local.is_dir() else s.model,
                device=device,
                compute_type=compute,
                cpu_threads=_threads(s.threads),
            )
        except Exception as exc:  # hub, file and CTranslate2 errors come in many types
            raise ModelUnavailableError(
                f"cannot load the speech model {s.model!r} ({type(exc).__name__}: {exc}). Without network "
                "access, point MMSEARCH_SPEECH__MODEL at a local faster-whisper model folder, or set "
                "MMSEARCH_SPEECH__ENABLED=false to index without speech."
            ) from exc

    @property
    def model(self):
        """The faster-whisper model, loaded on first use."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def transcribe(
        self, audio: np.ndarray, offset: float = 0.0, progress: Callable[[], None] = lambda: None
    ) -> list[Utterance]:
        """Timed utterances in 16 kHz mono float32 audio; no speech gives an empty list. Times are clipped
        to the audio: Whisper pads to 30 s windows and ended a phrase of a 1.4 s file at 2.0 s."""
        if len(audio) < SAMPLE_RATE // 10:
            return []
        s = self.settings
        segments, _ = self.model.transcribe(
            audio,
            language=s.language,
            beam_size=s.beam_size,
            vad_filter=s.vad,
            condition_on_previous_text=False,  # one misheard segment must not derail the rest
            temperature=0.0,  # no sampled fallback: the same file always gives the same transcript
            word_timestamps=s.word_times,
        )
        out = []
        duration = len(audio) / SAMPLE_RATE
        for seg in segments:
            progress()
            text = seg.text.strip()
            if text:
                start, end = _at(seg.start, duration, offset), _at(seg.end, duration, offset)
                words = tuple(
                    (
                        round(min(w.start, duration) + offset, 3),
                        round(min(w.end, duration) + offset, 3),
                        w.word.strip(),
                    )
                    for w in seg.words or ()
                    if w.word.strip()
                )
                out.append(Utterance(start, end, text, words))
        return out
