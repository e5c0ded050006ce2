"""`mmsearch bench media`: keyframe extraction and speech transcription speed, both as multiples of real
time, in one run: on generated footage and synthetic speech, or on real files (`--video`, `--audio`;
`make bench` uses the real corpus's 720p film and JFK's address). Each beside its floor, measured in the
same run: the video decoder alone on every frame of the same files (keyframes cannot be taken faster than
the frames are decoded), and Whisper's encoder alone on the same audio's 30-s windows (every window is
encoded, whatever is then decoded from it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsearch.api.bench.measure import Stopwatch, ratio
from mmsearch.config import Settings
from mmsearch.errors import MediaError
from mmsearch.indexer.avfile import container_format, moving_pictures, open_container, read_media
from mmsearch.indexer.isolate import MediaWorker
from mmsearch.indexer.speech import SAMPLE_RATE, Transcriber
from mmsearch.indexer.worker import MediaRequest
from mmsearch.synth.media import silence, speak, write_footage


@dataclass
class MediaBench:
    videos: int
    video_seconds: float
    video_size: str
    video_kbps: float
    keyframes: int
    keyframes_x_realtime: float  # seconds of video per second of wall time, through a media worker
    decoder_x_realtime: float  # the same files' every frame decoded, nothing else: the keyframes' floor
    keyframes_of_decoder: float  # keyframes_x_realtime / decoder_x_realtime
    speech_seconds: float
    speech_model: str
    utterances: int
    speech_x_realtime: float  # seconds of speech per second of wall time, model already loaded
    encoder_x_realtime: float  # the same audio's 30-s windows through Whisper's encoder only
    speech_of_encoder: float  # speech_x_realtime / encoder_x_realtime


SPOKEN = (
    "The lighthouse keeper painted the door bright yellow.",
    "A small boat sails across the quiet harbour at dawn.",
    "The orchestra played a waltz for the wedding guests.",
    "Welcome to the volcano museum, where the lava flows are explained.",
    "Our train leaves from platform nine in twenty minutes.",
    "Please add two cups of flour and a pinch of salt.",
)


def bench_media(
    settings: Settings,
    videos: int,
    seconds: float,
    size: tuple[int, int],
    media_dir: Path | None = None,
    real_videos: Sequence[Path] = (),
    real_audio: Path | None = None,
) -> MediaBench:
    """Keyframe extraction and transcription speed, both as multiples of real time, in one run: on the
    given files, else on generated footage and synthetic speech."""
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        paths = list(real_videos) or _footage(media_dir or Path(tmp), videos, seconds, size)
        no_speech = settings.speech.model_copy(update={"enabled": False})
        worker = MediaWorker(settings.indexer.media_timeout_s)
        try:
            worker.extract(MediaRequest(str(paths[0]), settings.video, no_speech, 224, 64))  # warm
            clock = Stopwatch()
            extracts = [
                worker.extract(MediaRequest(str(p), settings.video, no_speech, 224, 384)) for p in paths
            ]
            video_wall = clock.seconds()
        finally:
            worker.close()
        clock = Stopwatch()
        for p in paths:
            decode_every_frame(p)
        decoder_wall = clock.seconds()
        video_seconds = sum(e.duration for e in extracts)
        kbps = sum(p.stat().st_size for p in paths) * 8 / 1000 / video_seconds
        width, height = extracts[0].width, extracts[0].height

    audio = _recording(real_audio, settings) if real_audio else _spoken()
    transcriber = Transcriber(settings.speech)
    transcriber.transcribe(audio[: SAMPLE_RATE * 2])  # loads the model
    clock = Stopwatch()
    utterances = transcriber.transcribe(audio)
    speech_wall = clock.seconds()
    clock = Stopwatch()
    encode_windows(transcriber, audio)
    encoder_wall = clock.seconds()
    speech_seconds = len(audio) / SAMPLE_RATE
    return MediaBench(
        len(paths),
        round(video_seconds, 2),
        f"{width}x{height}",
        round(kbps, 1),
        sum(len(e.scenes) for e in extracts),
        ratio(video_seconds, video_wall, 2),
        ratio(video_seconds, decoder_wall, 2),
        ratio(decoder_wall, video_wall, 3),
        round(speech_seconds, 2),
        settings.speech.model,
        len(utterances),
        ratio(speech_seconds, speech_wall, 2),
        ratio(speech_seconds, encoder_wall, 2),
        ratio(encoder_wall, speech_wall, 3),
    )


def decode_every_frame(path: Path) -> int:
    """Every video frame of the file decoded as read_media decodes it (named demuxer, FFmpeg's threads),
    and nothing done with them: the number of frames."""
    with open_container(path, container_format(path)) as container:
        stream = moving_pictures(container)[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def encode_windows(transcriber: Transcriber, audio: np.ndarray) -> int:
    """The audio's 30-s windows (the last one padded, as Whisper pads it) through Whisper's encoder only:
    the number of windows."""
    import ctranslate2

    model = transcriber.model
    window = model.feature_extractor.n_samples
    starts = range(0, max(1, len(audio)), window)
    for start in starts:
        chunk = audio[start : start + window]
        features = model.feature_extractor(np.pad(chunk, (0, window - len(chunk))))[
            :, : model.feature_extractor.nb_max_frames
        ]
        model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], np.float32))
        )
    return len(starts)


def _footage(folder: Path, videos: int, seconds: float, size: tuple[int, int]) -> list[Path]:
    folder = folder / f"footage-{size[0]}x{size[1]}-{seconds:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(videos):
        path = folder / f"footage-{i:02d}.mp4"
        if not path.exists():
            write_footage(path, seconds, size, seed=i)
        paths.append(path)
    return paths


def _spoken() -> np.ndarray:
    pieces = []
    for text in SPOKEN:
        samples, rate = speak(text)
        pieces += [_resample(samples, rate, SAMPLE_RATE), silence(1.0, SAMPLE_RATE)]
    return np.concatenate(pieces)


def _recording(path: Path, settings: Settings) -> np.ndarray:
    """A real file's sound at the transcriber's rate, decoded as the indexer decodes it."""
    read = read_media(path, settings.video, 64, want_audio=True)
    if read.audio is None:
        raise MediaError(f"{path} has no sound to transcribe")
    return read.audio


def _resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Linear resampling: enough for synthetic speech."""
    n = round(len(samples) * to / rate)
    return np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.float32)
