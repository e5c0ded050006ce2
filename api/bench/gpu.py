"""`mmsearch bench gpu` (`make gpu-check`): the CUDA paths checked and measured in one run.

On a machine with a CUDA GPU, in a few minutes:
- end-to-end image indexing (camera-size JPEG files to committed vectors) with the fp16 encoder on the
  GPU, against the CPU path on the same files, and each against its model-only ceiling;
- how far fp16 on the GPU moves the vectors: cosine to float32 on the CPU, same pictures and texts;
- FAISS on the GPU at 1M x 512 (build, recall@10 against exact search, p50 / p99), where faiss has GPU
  support (the `gpu` extra); otherwise the reason, in one line;
- peak GPU memory: torch's own peak, and the device's used memory at its highest sample.
Without a CUDA GPU it says so in one line and does nothing else. The model has random weights (its
speed and numerics are the architecture's; no download).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmsearch.api.bench.index import bench_encoder, camera_set, pixels_of
from mmsearch.api.bench.measure import Stopwatch, ratio
from mmsearch.api.bench.search import bench_search
from mmsearch.config import Settings
from mmsearch.encode.models import Encoder
from mmsearch.encode.spec import ModelSpec
from mmsearch.storage import faiss_gpu

TEXTS = (
    "a red bicycle against a brick wall",
    "the lighthouse keeper painted the door bright yellow",
    "a small boat sails across the quiet harbour at dawn",
    "two dogs running on a beach",
    "word " * 70,
)


@dataclass
class GpuCheck:
    device: str
    torch: str
    cuda: str | None
    model: str
    images: int
    image_size: str
    decode_workers: int
    cpu_backend: str
    cpu_threads: int
    gpu_model_only_ips: float
    gpu_pipeline_ips: float
    gpu_pipeline_batch256_ips: float
    cpu_model_only_ips: float
    cpu_pipeline_ips: float
    pipeline_gpu_over_cpu: float
    gpu_stages: dict[str, float]
    fp16_cosine_images_min: float
    fp16_cosine_images_mean: float
    fp16_cosine_texts_min: float
    faiss: dict
    peak_torch_mib: float
    peak_device_used_mib: float
    seconds: float


def no_cuda_reason() -> str | None:
    """Why there is nothing to check here, or None when torch sees a CUDA GPU."""
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


class DeviceMemory:
    """The device's used memory (all allocations, FAISS's too) at its highest sample."""

    def __init__(self) -> None:
        self.peak = 0

    def sample(self) -> None:
        free, total = torch.cuda.mem_get_info()
        self.peak = max(self.peak, total - free)


def gpu_check(
    images: int = 512,
    model: str = "ViT-B-32",
    vectors: int = 1_000_000,
    queries: int = 1000,
    cpu_backend: str = "torch",
    size: tuple[int, int] = (1600, 1200),
    log=print,
) -> GpuCheck:
    """Every figure of the check; call only where `no_cuda_reason()` is None."""
    clock = Stopwatch()
    memory = DeviceMemory()
    spec = ModelSpec(model, random_weights=True)
    torch.cuda.reset_peak_memory_stats()
    gpu = Encoder(spec, "cuda", batch_size=256, query_backend="torch")
    cpu = Encoder(spec, "cpu", backend=cpu_backend, query_backend="torch")
    with tempfile.TemporaryDirectory(prefix="mmsearch-gpu-check-") as tmp:
        folder = Path(tmp)
        on_gpu = _settings(folder / "gpu", 32)
        log(f"indexing {images} {size[0]}x{size[1]} JPEGs with {spec.label()}: GPU fp16 ...")
        gpu_run = bench_encoder(gpu, on_gpu, images, folder, size)
        memory.sample()
        gpu_256 = bench_encoder(gpu, _settings(folder / "gpu256", 256), images, folder, size)
        memory.sample()
        log(f"... and the CPU path ({cpu.backend}, {torch.get_num_threads()} threads) on the same files ...")
        cpu_run = bench_encoder(cpu, _settings(folder / "cpu", 32), images, folder, size)
        image_cos, text_cos = fp16_agreement(gpu, cpu, camera_set(folder, images, size)[:256])
    memory.sample()
    log(f"FAISS at {vectors:,} x 512 on the GPU ...")
    faiss_figures = faiss_on_gpu(vectors, queries)
    memory.sample()
    return GpuCheck(
        torch.cuda.get_device_name(0),
        torch.__version__,
        torch.version.cuda,
        spec.label(),
        images,
        gpu_run.image_size,
        on_gpu.indexer.decode_workers,
        cpu.backend,
        torch.get_num_threads(),
        gpu_run.model_only_ips,
        gpu_run.pipeline_ips,
        gpu_256.pipeline_ips,
        cpu_run.model_only_ips,
        cpu_run.pipeline_ips,
        ratio(gpu_run.pipeline_ips, cpu_run.pipeline_ips, 2),
        gpu_run.stages,
        round(float(image_cos.min()), 5),
        round(float(image_cos.mean()), 5),
        round(float(text_cos.min()), 5),
        faiss_figures,
        round(torch.cuda.max_memory_allocated() / 2**20, 1),
        round(memory.peak / 2**20, 1),
        round(clock.seconds(), 1),
    )


def _settings(index_dir: Path, batch_size: int) -> Settings:
    return Settings(index_dir=index_dir, indexer={"batch_size": batch_size})


def fp16_agreement(gpu: Encoder, cpu: Encoder, pictures: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Per-picture and per-text cosine between the GPU's fp16 vectors and the CPU's float32 ones."""
    pixels = pixels_of(gpu, pictures, 100_000_000)
    images = (gpu.encode_pixels(pixels) * cpu.encode_pixels(pixels)).sum(1)
    texts = (gpu.encode_texts(list(TEXTS)) * cpu.encode_texts(list(TEXTS))).sum(1)
    return images, texts


def faiss_on_gpu(vectors: int, queries: int) -> dict:
    """`mmsearch bench search` rows for flat and ivf_pq at `vectors`, on the GPU; or why not."""
    reason = faiss_gpu.no_gpu_reason()
    if reason is not None:
        return {"skipped": reason}
    result = bench_search([vectors], 512, ("flat", "ivf_pq"), queries, gpu="on")
    return {"rows": [r for r in result["rows"] if r["device"] != "cpu"] or result["rows"]}


def summary(check: GpuCheck) -> list[str]:
    """The check as short lines, the headline ratio first."""
    lines = [
        f"{check.device}, torch {check.torch}, CUDA {check.cuda}; {check.model}; {check.seconds} s",
        f"indexing {check.images} JPEGs ({check.image_size}, {check.decode_workers} decode threads): "
        f"GPU fp16 {check.gpu_pipeline_ips} images/s "
        f"(batch 256: {check.gpu_pipeline_batch256_ips}), CPU {check.cpu_backend} "
        f"{check.cpu_pipeline_ips} images/s ({check.cpu_threads} threads): GPU / CPU = "
        f"{check.pipeline_gpu_over_cpu}x",
        f"model only: GPU {check.gpu_model_only_ips} images/s, CPU {check.cpu_model_only_ips}; "
        f"GPU pipeline stages (s): {check.gpu_stages}",
        f"fp16 GPU vs float32 CPU cosine: images min {check.fp16_cosine_images_min} "
        f"mean {check.fp16_cosine_images_mean}, texts min {check.fp16_cosine_texts_min}",
    ]
    if "skipped" in check.faiss:
        lines.append(f"FAISS on the GPU: skipped, {check.faiss['skipped']}")
    for row in check.faiss.get("rows", []):
        lines.append(
            f"FAISS {row['type']} ({row['device']}) at {row['n']:,}: build {row['build_s']} s, "
            f"recall@10 {row['recall_rescored']} (raw {row['recall_raw']}), "
            f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, batch {row['batch_qps']} q/s"
        )
    lines.append(
        f"peak GPU memory: torch {check.peak_torch_mib} MiB, device used {check.peak_device_used_mib} MiB"
    )
    return lines
