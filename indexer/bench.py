"""`mmsearch bench index`: full-pipeline throughput against model-only throughput, in one run.

Model-only: preprocessed tensors straight through the encoder (the ceiling). Pipeline: camera-size JPEG
files on disk to committed vectors (walk, hash, decode, preprocess, encode, catalog + FAISS writes).
The model-only figure is the better of two runs taken before and after the pipeline, so machine drift
during the run can only lower the ratio.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmsearch.config import IndexerSettings, Settings
from mmsearch.encode.images import decode_image
from mmsearch.encode.models import Encoder
from mmsearch.indexer.pipeline import index_folder
from mmsearch.storage.store import Store


@dataclass
class IndexBench:
    images: int
    image_size: str
    batch_size: int
    threads: int
    model: str
    backend: str
    model_only_ips: float
    pipeline_ips: float
    ratio: float
    stages: dict[str, float]


def camera_jpegs(folder: Path, n: int, size: tuple[int, int] = (1600, 1200), seed: int = 0) -> list[Path]:
    """Write n photo-like JPEGs (gradients, shapes, sensor-like noise); existing ones are reused."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(n):
        path = folder / f"photo-{i:05d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        base = rng.uniform(0, 255, 3) * ramp + rng.uniform(0, 255, 3) * (1 - ramp)
        pixels = np.broadcast_to(base, (h, w, 3)) + rng.normal(0, 6, (h, w, 3))
        im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x, y = rng.integers(0, w), rng.integers(0, h)
            r = int(rng.integers(40, 300))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        im.save(path, "JPEG", quality=90)
    return paths


def model_only(encoder: Encoder, pixels: np.ndarray, n: int) -> float:
    """Images/s of the encoder alone on preprocessed tensors, batch by batch as the pipeline feeds it."""
    encoder.encode_pixels(pixels)  # warm-up
    start, done = time.perf_counter(), 0
    while done < n:
        encoder.encode_pixels(pixels)
        done += len(pixels)
    return done / (time.perf_counter() - start)


def bench_index(
    settings: Settings, n: int, image_dir: Path | None = None, size: tuple[int, int] = (1600, 1200)
) -> IndexBench:
    return bench_encoder(Encoder.from_settings(settings.model), settings, n, image_dir, size)


def bench_encoder(
    encoder: Encoder, settings: Settings, n: int, image_dir: Path | None, size: tuple[int, int]
) -> IndexBench:
    cfg: IndexerSettings = settings.indexer
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        folder = (image_dir or Path(tmp)) / f"camera-{size[0]}x{size[1]}-{n}"  # exactly n files
        paths = camera_jpegs(folder, n, size)
        batch = [
            decode_image(p.read_bytes(), cfg.max_image_pixels, encoder.image_size).image
            for p in paths[: cfg.batch_size]
        ]
        pixels = np.stack([encoder.preprocess(im) for im in batch])
        before = model_only(encoder, pixels, n)
        index_settings = settings.model_copy(update={"index_dir": Path(tmp) / "index"})
        store = Store.open(index_settings, encoder.record(), create=True)
        report = index_folder(paths[0].parent, encoder, store, cfg)
        store.close()
        if report.indexed != n:
            raise RuntimeError(f"pipeline indexed {report.indexed} of {n} images: {report.errors[:3]}")
        after = model_only(encoder, pixels, n)
    best = max(before, after)
    pipeline = n / report.seconds
    return IndexBench(
        n,
        f"{size[0]}x{size[1]}",
        cfg.batch_size,
        torch.get_num_threads(),
        encoder.spec.label(),
        encoder.backend,
        round(best, 2),
        round(pipeline, 2),
        round(pipeline / best, 3),
        {k: round(v, 2) for k, v in report.stages.items()} | {"total": round(report.seconds, 2)},
    )


@dataclass
class MediaBench:
    videos: int
    video_seconds: float
    video_size: str
    video_kbps: float
    keyframes: int
    keyframes_x_realtime: float  # seconds of video per second of wall time, through a media worker
    speech_seconds: float
    speech_model: str
    utterances: int
    speech_x_realtime: float  # seconds of speech per second of wall time, model already loaded


SPOKEN = (
    "The lighthouse keeper painted the door bright yellow.",
    "A small boat sails across the quiet harbour at dawn.",
    "The orchestra played a waltz for the wedding guests.",
    "Welcome to the volcano museum, where the lava flows are explained.",
    "Our train leaves from platform nine in twenty minutes.",
    "Please add two cups of flour and a pinch of salt.",
)


def bench_media(
    settings: Settings, videos: int, seconds: float, size: tuple[int, int], media_dir: Path | None = None
) -> MediaBench:
    """Keyframe extraction and transcription speed, both as multiples of real time, in one run."""
    from mmsearch.indexer.isolate import MediaWorker
    from mmsearch.indexer.speech import SAMPLE_RATE, Transcriber
    from mmsearch.indexer.worker import MediaRequest
    from mmsearch.synth.media import silence, speak, write_footage

    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        folder = (media_dir or Path(tmp)) / f"footage-{size[0]}x{size[1]}-{seconds:g}s"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(videos):
            path = folder / f"footage-{i:02d}.mp4"
            if not path.exists():
                write_footage(path, seconds, size, seed=i)
            paths.append(path)
        no_speech = settings.speech.model_copy(update={"enabled": False})
        worker = MediaWorker(settings.indexer.media_timeout_s)
        try:
            worker.extract(MediaRequest(str(paths[0]), "video", settings.video, no_speech, 224, 64))  # warm
            start = time.perf_counter()
            extracts = [
                worker.extract(MediaRequest(str(p), "video", settings.video, no_speech, 224, 384))
                for p in paths
            ]
            video_wall = time.perf_counter() - start
        finally:
            worker.close()
        video_seconds = sum(e.duration for e in extracts)
        kbps = sum(p.stat().st_size for p in paths) * 8 / 1000 / video_seconds

    pieces = []
    for text in SPOKEN:
        samples, rate = speak(text)
        pieces += [_resample(samples, rate, SAMPLE_RATE), silence(1.0, SAMPLE_RATE)]
    audio = np.concatenate(pieces)
    transcriber = Transcriber(settings.speech)
    transcriber.transcribe(audio[: SAMPLE_RATE * 2])  # loads the model
    start = time.perf_counter()
    utterances = transcriber.transcribe(audio)
    speech_wall = time.perf_counter() - start
    speech_seconds = len(audio) / SAMPLE_RATE
    return MediaBench(
        videos,
        round(video_seconds, 2),
        f"{size[0]}x{size[1]}",
        round(kbps, 1),
        sum(len(e.scenes) for e in extracts),
        round(video_seconds / video_wall, 2),
        round(speech_seconds, 2),
        settings.speech.model,
        len(utterances),
        round(speech_seconds / speech_wall, 2),
    )


def _resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Linear resampling: enough for synthetic speech."""
    n = round(len(samples) * to / rate)
    return np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.float32)
