"""`mmsearch bench search`: index types on synthetic unit vectors at growing sizes.

The vectors are clustered in a low-dimensional latent space and projected up, with a little isotropic
noise (like embeddings, whose neighbourhoods have structure; uniform noise would make every neighbour
equidistant and IVF meaningless). Queries are data points plus noise. Every approximate type is measured
as the engine uses it: top-`candidates` from FAISS (grown past 1M vectors: `candidates_for`), rescored
exactly with the float32 vectors.

Vectors that would take more than SCRATCH_ABOVE of memory (10M x 512-d: 20 GB) are written to a
memory-mapped file in a scratch folder instead, as the engine's catalog keeps them on disk; flat and
HNSW, which hold a float32 copy of every vector in memory, are skipped (with the reason) where that
copy would take more than half the machine's memory.

Rows run on the CPU (`index.gpu` off). Where a GPU is selected (search/storage/faiss_gpu.py), flat and
ivf_pq get a second row each, `flat_gpu` (search on the GPU) and `ivf_pq_gpu` (k-means training on the
GPU, search on the CPU: FAISS has no GPU 4-bit fast-scan PQ); the `device` column says which.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from mmsearch.api.bench.measure import Stopwatch, percentiles_ms, rate, ratio, write_json
from mmsearch.config import IndexSettings, Settings
from mmsearch.defaults import CANDIDATES, candidates_for
from mmsearch.storage import faiss_gpu
from mmsearch.storage.index_types import FLAT, HNSW, nlist_for, pq_codes_for
from mmsearch.storage.vectors import VectorIndex

TYPES = ("flat", "hnsw", "ivf_pq")
GPU_TYPES = ("flat", "ivf_pq")  # the types a GPU changes: flat search, IVF training
LATENT, NOISE, QUERY_NOISE = 64, 0.1, 0.05
CHUNK = 100_000
TRUTH_CHUNK = 1_000_000  # vectors per slice of the exact search that gives the ground truth
SCRATCH_ABOVE = 4 << 30  # bytes of vectors above which they live in a memory-mapped file


@dataclass
class Row:
    type: str
    n: int
    factory: str
    build_s: float
    bytes_per_vector: float
    recall_raw: float  # recall@10 of the index's own top 10
    recall_rescored: float  # recall@10 after exact rescoring of the top candidates
    p50_ms: float
    p99_ms: float
    batch_qps: float
    device: str = "cpu"  # cpu, gpu (search on the GPU) or gpu-train (k-means on the GPU, search on the CPU)
    nprobe: int | None = None  # IVF lists visited per query (IVF types)
    candidates: int | None = None  # top hits rescored exactly: --candidates, grown past 1M vectors


def factory_of(kind: str, n: int, dim: int) -> str:
    """The factory string the size-chosen types use for a collection of n vectors."""
    return {"flat": FLAT, "hnsw": HNSW, "ivf_pq": f"IVF{nlist_for(n)}_HNSW32,PQ{pq_codes_for(dim)}x4fsr"}[
        kind
    ]


def synthetic(n: int, dim: int, seed: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """n clustered unit vectors: sqrt(n) Gaussian clusters in a 64-d latent space, projected to dim;
    written into `out` (an (n, dim) float32 array, memory-mapped or not) when given."""
    rng = np.random.default_rng(seed)
    clusters = max(16, int(np.sqrt(n)))
    projection = rng.normal(size=(LATENT, dim)).astype(np.float32) / np.sqrt(LATENT)
    centres = rng.normal(size=(clusters, LATENT)).astype(np.float32)
    out = np.empty((n, dim), np.float32) if out is None else out
    for start in range(0, n, CHUNK):
        m = min(n, start + CHUNK) - start
        z = centres[rng.integers(clusters, size=m)] + 0.6 * rng.normal(size=(m, LATENT)).astype(np.float32)
        x = z @ projection + NOISE * rng.normal(size=(m, dim)).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def queries_near(data: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Data points moved by a little noise, re-normalised."""
    rng = np.random.default_rng(seed)
    q = data[rng.choice(len(data), min(count, len(data)), replace=False)]
    q = q + QUERY_NOISE * rng.normal(size=q.shape).astype(np.float32)
    return np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), np.float32)


def synthetic_in(n: int, dim: int, scratch: Path) -> np.ndarray:
    """`synthetic(n, dim)` in memory, or in a memory-mapped .npy file under `scratch` when large."""
    if n * dim * 4 <= SCRATCH_ABOVE:
        return synthetic(n, dim)
    out = np.lib.format.open_memmap(scratch / f"vectors-{n}x{dim}.npy", "w+", np.float32, (n, dim))
    return synthetic(n, dim, out=out)


def memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def too_big(kind: str, n: int, dim: int) -> str | None:
    """Why this type is not built at n here: flat and HNSW hold every vector as float32 in memory."""
    need, have = n * dim * 4, memory_bytes()
    if kind == "ivf_pq" or need <= have // 2:
        return None
    return f"{kind} at {n:,}: {need / 2**30:.1f} GiB of float32 vectors in {have / 2**30:.1f} GiB of memory"


def exact_top(queries: np.ndarray, data: np.ndarray, k: int) -> np.ndarray:
    """Ids of the exact top-k by inner product, searched a slice of the data at a time."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for start in range(0, len(data), TRUTH_CHUNK):
        part = np.ascontiguousarray(data[start : start + TRUTH_CHUNK])
        scores, ids = faiss.knn(queries, part, k, faiss.METRIC_INNER_PRODUCT)
        heap.add_result(scores, ids + start)
    heap.finalize()
    return heap.I


def build(kind: str, data: np.ndarray, settings: IndexSettings) -> tuple[VectorIndex, float]:
    """The index of this type over the data (ids 0..n-1), trained on a sample; and its build seconds."""
    clock = Stopwatch()
    index = VectorIndex(data.shape[1], factory=factory_of(kind, len(data), data.shape[1]), settings=settings)
    wanted = min(len(data), index.training_size())
    if wanted:
        index.train(data[np.sort(np.random.default_rng(2).choice(len(data), wanted, replace=False))])
    for s in range(0, len(data), CHUNK):
        index.add(np.arange(s, min(len(data), s + CHUNK)), data[s : s + CHUNK])
    return index, clock.seconds()


def index_bytes(index: VectorIndex) -> int:
    """Size of the index as FAISS writes it (its memory, less allocator overhead)."""
    with tempfile.NamedTemporaryFile(suffix=".faiss") as f:
        faiss.write_index(index.index, f.name)
        return Path(f.name).stat().st_size


def rescored(data: np.ndarray, query: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """The k best of these candidate ids by exact inner product."""
    ids = ids[ids >= 0]
    return ids[np.argsort(-(data[ids] @ query), kind="stable")[:k]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def measure(
    kind: str,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    candidates: int,
    k: int = 10,
    gpu: bool = False,
    nprobes: list[int] | None = None,
) -> list[Row]:
    """Rows of the table for one index: build, size, recall before and after rescoring, latency, batch
    QPS; for IVF types one row per `nprobes` value (default: the setting's), over the same index. With
    `gpu`, the type as it runs with a GPU (its GPU copy is made at the first, untimed, search)."""
    index, build_s = build(kind, data, IndexSettings(gpu="on" if gpu else "off"))
    size = round(index_bytes(index) / len(data), 1)
    ivf = kind == "ivf_pq"
    rows = []
    candidates = candidates_for(len(data), candidates)  # as the engine grows them with the collection
    for nprobe in (nprobes or [index.settings.nprobe]) if ivf else [None]:
        if nprobe is not None:
            index.settings = index.settings.model_copy(update={"nprobe": nprobe})
        raw = index.search(queries, k)[1]
        latencies, final = [], []
        for q in queries:
            clock = Stopwatch()
            ids = index.search(q[None, :], candidates)[1][0]
            final.append(rescored(data, q, ids, k))
            latencies.append(clock.seconds())
        clock = Stopwatch()
        index.search(queries, candidates)
        batch_s = clock.seconds()
        p50, p99 = percentiles_ms(latencies, (50, 99), 3)
        device = ("gpu" if index.gpu_search else "gpu-train" if ivf else "cpu") if gpu else "cpu"
        rows.append(
            Row(
                f"{kind}_gpu" if gpu else kind,
                len(data),
                index.factory,
                round(build_s, 2),
                size,
                round(recall(raw, truth), 4),
                round(recall(final, truth), 4),
                p50,
                p99,
                rate(len(queries), batch_s, 1),
                device,
                nprobe,
                candidates,
            )
        )
    return rows


def bench_search(
    sizes: list[int],
    dim: int = 512,
    types: list[str] | tuple[str, ...] = TYPES,
    queries: int = 200,
    candidates: int = CANDIDATES,
    console: Console | None = None,
    gpu: faiss_gpu.GpuMode | None = None,
    scratch: Path | None = None,
    nprobes: list[int] | None = None,
) -> dict:
    """Every type at every size; rows as dicts, plus p50 latency per size (the scaling line). `gpu`
    (default: the setting `index.gpu`) adds GPU rows where it selects a GPU; `nprobes` gives IVF types a
    row per value. Large vector sets go to a temporary file under `scratch` (default: the system's temp
    folder), removed at the end."""
    mode = Settings().index.gpu if gpu is None else gpu
    on_gpu = faiss_gpu.use_gpu(mode)
    skipped = None if on_gpu else ("index.gpu is off" if mode == "off" else faiss_gpu.no_gpu_reason())
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-", dir=scratch) as folder:
        vectors = synthetic_in(max(sizes), dim, Path(folder))
        rows, too_large = _measure_all(vectors, sizes, types, queries, candidates, on_gpu, console, nprobes)
        del vectors  # unmapped before its file goes
    result = {"dim": dim, "queries": queries, "candidates": candidates, "rows": [asdict(r) for r in rows]}
    return {**result, "gpu_skipped": skipped, "too_large": too_large}


def _measure_all(
    everything: np.ndarray,
    sizes: list[int],
    types: list[str] | tuple[str, ...],
    queries: int,
    candidates: int,
    on_gpu: bool,
    console: Console | None,
    nprobes: list[int] | None,
) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    too_large: list[str] = []
    dim = everything.shape[1]
    for n in sorted(sizes):
        data = everything[:n]
        q = queries_near(data, queries)
        truth = exact_top(q, data, 10)
        for kind in types:
            if reason := too_big(kind, n, dim):
                too_large.append(reason)
                continue
            if console is not None:
                console.log(f"{kind} at {n:,} vectors ...")
            rows += measure(kind, data, q, truth, candidates, nprobes=nprobes)
            if on_gpu and kind in GPU_TYPES:
                if console is not None:
                    console.log(f"{kind} at {n:,} vectors on the GPU ...")
                rows += measure(kind, data, q, truth, candidates, gpu=True, nprobes=nprobes)
    return rows, too_large


def scaling(result: dict) -> dict[str, list[tuple[int, float, float]]]:
    """Per type (and nprobe): (n, p50 ms, p50 / p50 at the smallest n)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in result["rows"]:
        key = row["type"] if row.get("nprobe") is None else f"{row['type']} nprobe {row['nprobe']}"
        out.setdefault(key, []).append((row["n"], row["p50_ms"]))
    return {t: [(n, p, ratio(p, pts[0][1], 2)) for n, p in pts] for t, pts in out.items()}


def report(result: dict, console: Console, json_out: Path | None = None) -> None:
    """The table, the scaling line per type, and the JSON file."""
    title = f"search at {result['dim']}-d, {result['queries']} queries, rescoring top-{result['candidates']}"
    table = Table(title=title)
    columns = [
        "type",
        "n",
        "build_s",
        "bytes_per_vector",
        "recall_raw",
        "recall_rescored",
        "p50_ms",
        "p99_ms",
    ]
    rest = ["batch_qps", "nprobe", "candidates", "factory"]
    if any(row.get("device", "cpu") != "cpu" for row in result["rows"]):
        rest.append("device")
    for column in [*columns, *rest]:
        table.add_column(column, justify="left" if column in ("type", "factory", "device") else "right")
    for row in result["rows"]:
        cells = (
            f"{row[c]:,}" if c == "n" else "-" if row.get(c) is None else str(row[c])
            for c in [*columns, *rest]
        )
        table.add_row(*cells)
    console.print(table)
    if result.get("gpu_skipped"):
        console.print(f"GPU rows skipped: {result['gpu_skipped']}")
    for reason in result.get("too_large", []):
        console.print(f"skipped, too large for this machine: {reason}")
    result["scaling"] = scaling(result)
    for kind, points in result["scaling"].items():
        line = ", ".join(f"{n:,}: {p} ms (x{r})" for n, p, r in points)
        console.print(f"scaling {kind}: p50 {line}")
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
