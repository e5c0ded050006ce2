"""`mmsearch bench ray`: indexing throughput on Ray against the plain pipeline's, same files and model, in
one run; and the machine's busy CPU seconds of each (Ray's own processes included), the steadier measure
where the machine is CPU bound.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmsearch.api.bench.index import camera_set
from mmsearch.api.bench.measure import rate, ratio
from mmsearch.config import Settings
from mmsearch.encode.factory import open_encoder
from mmsearch.encode.spec import ModelSpec
from mmsearch.indexer.distributed import index_images_on_ray
from mmsearch.indexer.pipeline import index_folder
from mmsearch.storage.store import Store


@dataclass
class RayBench:
    images: int
    model: str
    backend: str
    plain_ips: float  # images/s of index_folder, best of the runs
    ray_ips: float  # images/s of index_images_on_ray, best of the runs
    ratio: float  # ray_ips / plain_ips
    plain_cpu_s: float  # the machine's busy CPU seconds during index_folder, least of the runs
    ray_cpu_s: float  # the same during index_images_on_ray: Ray's own processes included
    cpu_ratio: float  # plain_cpu_s / ray_cpu_s: the throughput ratio where CPU bound, less noisy


def busy_cpu_seconds() -> float:
    """CPU seconds this machine has spent busy since boot, all processes (Linux /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def bench_ray(settings: Settings, n: int = 200, folder: Path | None = None, runs: int = 2) -> RayBench:
    """Images/s and busy CPU seconds of the plain pipeline and of `index_images_on_ray` (Ray connected
    first) on the same n camera-size JPEGs with the same model, each into a fresh index, alternating."""
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-ray-") as tmp:
        images = camera_set(folder or Path(tmp), n)[0].parent
        encoder = open_encoder(ModelSpec.from_settings(settings.model), settings.model)
        best = {"plain": 0.0, "ray": 0.0}
        cpu = {"plain": float("inf"), "ray": float("inf")}
        for run in range(runs):
            for way in best:
                s = settings.model_copy(update={"index_dir": Path(tmp) / f"{way}-{run}"})
                store = Store.open(s, encoder.record(), create=True)
                busy = busy_cpu_seconds()
                if way == "plain":
                    report = index_folder(images, encoder, store, s.indexer)
                else:
                    report = index_images_on_ray(images, encoder, store, s)
                cpu[way] = min(cpu[way], round(busy_cpu_seconds() - busy, 1))
                store.close()
                if report.indexed != n:
                    raise RuntimeError(f"{way} indexed {report.indexed} of {n} images: {report.errors[:3]}")
                best[way] = max(best[way], rate(n, report.seconds))
    return RayBench(
        n,
        encoder.spec.label(),
        encoder.backend,
        best["plain"],
        best["ray"],
        ratio(best["ray"], best["plain"]),
        cpu["plain"],
        cpu["ray"],
        ratio(cpu["plain"], cpu["ray"]),
    )
