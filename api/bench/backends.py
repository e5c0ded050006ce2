"""`mmsearch bench index --compare`: the encoder backends side by side on the same JPEG files.

Each backend runs `bench_encoder` in a fresh process, so its peak memory is its own and no backend
runs with another's threads or caches warm. Cosines compare each backend's vectors for the same
preprocessed images with torch float32's.
"""

from __future__ import annotations

import resource
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from mmsearch.api.bench.index import IndexBench, bench_encoder, camera_set, pixels_of
from mmsearch.api.bench.measure import Stopwatch
from mmsearch.config import Backend, Settings
from mmsearch.encode import onnx_towers
from mmsearch.encode.models import Encoder, native_bf16

REFERENCE: Backend = "torch"
COSINE_IMAGES = 64


@dataclass
class BackendBench:
    backend: str
    load_s: float  # building the encoder, an ONNX export or quantisation included when not cached
    model_only_ips: float
    pipeline_ips: float
    peak_rss_mib: float  # the process's peak resident set (getrusage ru_maxrss), decode threads included
    pss_mib: float | None  # its proportional set size at the end, from /proc/self/smaps_rollup
    cosine_mean: float | None  # vs torch float32 on the same images; None for torch itself
    cosine_min: float | None


@dataclass
class CompareBench:
    images: int
    image_size: str
    batch_size: int
    model: str
    backends: list[BackendBench]


def backends_here() -> list[Backend]:
    """torch first (the reference for cosines), then every other backend this machine runs natively."""
    found: list[Backend] = [REFERENCE]
    if native_bf16():
        found.append("torch-bf16")
    if onnx_towers.missing() is None:
        found += ["onnx", "onnx-int8"]
    return found


def compare_backends(
    settings: Settings, n: int, image_dir: Path | None, size: tuple[int, int], backends: list[Backend]
) -> CompareBench:
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        folder = image_dir or Path(tmp)
        runs = [_in_child(settings, backend, n, folder, size) for backend in backends]
    reference = runs[0][1] if backends[0] == REFERENCE else None
    first = runs[0][0]
    summaries = [_summary(*run, None if i == 0 else reference) for i, run in enumerate(runs)]
    return CompareBench(n, first.image_size, first.batch_size, first.model, summaries)


def _in_child(settings: Settings, backend: Backend, n: int, folder: Path, size: tuple[int, int]) -> tuple:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_run_one, settings, backend, n, folder, size).result()


def _run_one(
    settings: Settings, backend: Backend, n: int, folder: Path, size: tuple[int, int]
) -> tuple[IndexBench, np.ndarray, float, float, float | None]:
    """In a fresh process: build the encoder, benchmark it, encode the probe images, read memory."""
    model = settings.model.model_copy(update={"backend": backend})
    clock = Stopwatch()
    encoder = Encoder.from_settings(model)
    load_s = clock.seconds()
    bench = bench_encoder(encoder, settings, n, folder, size)
    vectors = encoder.encode_pixels(
        pixels_of(encoder, camera_set(folder, n, size)[:COSINE_IMAGES], settings.indexer.max_image_pixels)
    )
    return bench, vectors, load_s, _peak_rss_mib(), _pss_mib()


def _summary(
    bench: IndexBench,
    vectors: np.ndarray,
    load_s: float,
    peak_rss: float,
    pss: float | None,
    reference: np.ndarray | None,
) -> BackendBench:
    cosines = None if reference is None else (vectors * reference).sum(1)
    return BackendBench(
        bench.backend,
        round(load_s, 2),
        bench.model_only_ips,
        bench.pipeline_ips,
        round(peak_rss, 1),
        None if pss is None else round(pss, 1),
        None if cosines is None else round(float(cosines.mean()), 5),
        None if cosines is None else round(float(cosines.min()), 5),
    )


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _pss_mib() -> float | None:
    try:
        rollup = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), None)
    return None if kib is None else kib / 1024
