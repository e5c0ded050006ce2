"""`mmsearch bench index`: full-pipeline throughput against model-only throughput, in one run.

Model-only: preprocessed tensors straight through the encoder (the ceiling). Pipeline: camera-size JPEG
files on disk to committed vectors (walk, hash, decode, preprocess, encode, catalog + FAISS writes).
The model-only figure is the better of two runs taken before and after the pipeline, so machine drift
during the run can only lower the ratio.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmsearch.api.bench.measure import Stopwatch, rate, ratio
from mmsearch.config import IndexerSettings, Settings
from mmsearch.encode.images import read_picture
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


def camera_set(root: Path, n: int, size: tuple[int, int] = (1600, 1200)) -> list[Path]:
    """The n camera-size JPEGs of a benchmark, in a folder of their own under root (exactly n files, so a
    folder indexes as the set), written once and reused."""
    return camera_jpegs(root / f"camera-{size[0]}x{size[1]}-{n}", n, size)


def pixels_of(encoder: Encoder, paths: list[Path], max_pixels: int) -> np.ndarray:
    """The pictures decoded and preprocessed as the pipeline does, stacked for encode_pixels."""
    images = [read_picture(p, max_pixels, encoder.image_size).image for p in paths]
    return np.stack([encoder.preprocess(im) for im in images])


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
    clock, done = Stopwatch(), 0
    while done < n:
        encoder.encode_pixels(pixels)
        done += len(pixels)
    return done / clock.seconds()


def bench_index(
    settings: Settings, n: int, image_dir: Path | None = None, size: tuple[int, int] = (1600, 1200)
) -> IndexBench:
    return bench_encoder(Encoder.from_settings(settings.model), settings, n, image_dir, size)


def bench_encoder(
    encoder: Encoder, settings: Settings, n: int, image_dir: Path | None, size: tuple[int, int]
) -> IndexBench:
    cfg: IndexerSettings = settings.indexer
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        paths = camera_set(image_dir or Path(tmp), n, size)
        pixels = pixels_of(encoder, paths[: cfg.batch_size], cfg.max_image_pixels)
        before = model_only(encoder, pixels, n)
        index_settings = settings.model_copy(update={"index_dir": Path(tmp) / "index"})
        store = Store.open(index_settings, encoder.record(), create=True)
        report = index_folder(paths[0].parent, encoder, store, cfg)
        store.close()
        if report.indexed != n:
            raise RuntimeError(f"pipeline indexed {report.indexed} of {n} images: {report.errors[:3]}")
        after = model_only(encoder, pixels, n)
    best = max(before, after)
    return IndexBench(
        n,
        f"{size[0]}x{size[1]}",
        cfg.batch_size,
        torch.get_num_threads(),
        encoder.spec.label(),
        encoder.backend,
        round(best, 2),
        rate(n, report.seconds),
        ratio(n / report.seconds, best),
        {k: round(v, 2) for k, v in report.stages.items()} | {"total": round(report.seconds, 2)},
    )
