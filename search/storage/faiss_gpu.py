"""FAISS on a GPU: detection, one shared StandardGpuResources, GPU search copies and GPU k-means.

Optional throughout: with faiss-cpu (no GPU support in the module) or no visible GPU, `use_gpu` says no
and every caller stays on the CPU. The CPU index stays the source of truth (saved, changed by adds and
removes); a GPU copy only accelerates search. FAISS has GPU versions of flat and of IVF-Flat, IVF-SQ and
IVF-PQ (8-bit codes) with a flat coarse quantizer; not of HNSW, 4-bit fast-scan PQ or id selectors.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Literal

import faiss
import numpy as np

from mmsearch.errors import ConfigError

log = logging.getLogger(__name__)

GpuMode = Literal["auto", "off", "on"]
DEVICE = 0  # the GPU FAISS uses (one GPU; CUDA_VISIBLE_DEVICES picks which)
MAX_K = 2048  # FAISS's GPU k-selection limit (GPU_MAX_SELECTION_K): larger k or nprobe stay on the CPU
LOCK = threading.RLock()  # a StandardGpuResources serves one calling thread at a time


def no_gpu_reason() -> str | None:
    """Why FAISS cannot use a GPU here, or None when it can."""
    if not hasattr(faiss, "StandardGpuResources"):
        return "faiss has no GPU support here (faiss-cpu; the gpu extra installs faiss-gpu-cu12)"
    if gpu_count() == 0:
        return "faiss has GPU support but sees no GPU"
    return None


@functools.cache
def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu), detected once."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except RuntimeError:  # a CUDA driver that fails to start
        return 0


def use_gpu(mode: GpuMode) -> bool:
    """Whether the setting `index.gpu` selects a GPU: auto when there is one, off never, on always
    (ConfigError when there is none)."""
    if mode == "off":
        return False
    reason = no_gpu_reason()
    if mode == "on" and reason is not None:
        raise ConfigError(f"index.gpu is 'on' but {reason}; set MMSEARCH_INDEX__GPU=auto or off")
    return reason is None


@functools.cache
def resources() -> faiss.StandardGpuResources:
    """The GPU memory and streams every GPU index here shares (kept alive for the process)."""
    return faiss.StandardGpuResources()


def _gpu_type(index: faiss.Index) -> bool:
    """Whether FAISS has a GPU version of this index type (under an IDMap, which stays on the CPU)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        index = faiss.downcast_index(index.index)
    if isinstance(index, faiss.IndexFlat):
        return True
    ivf_types = (faiss.IndexIVFFlat, faiss.IndexIVFScalarQuantizer, faiss.IndexIVFPQ)
    return type(index) in ivf_types and isinstance(faiss.downcast_index(index.quantizer), faiss.IndexFlat)


def search_copy(index: faiss.Index) -> faiss.Index | None:
    """A copy of `index` on the GPU for searching, or None where FAISS has no GPU version of its type
    (HNSW, 4-bit fast-scan PQ, an IVF with an HNSW coarse quantizer) or the copy fails."""
    if not _gpu_type(index):
        return None
    try:
        with LOCK:
            return faiss.index_cpu_to_gpu(resources(), DEVICE, index)
    except RuntimeError as exc:  # e.g. an IVF-PQ code size the GPU kernels lack, or out of memory
        log.warning("searching on the CPU: cannot copy the index to the GPU: %s", exc)
        return None


def search(
    index: faiss.Index, queries: np.ndarray, k: int, params: faiss.SearchParameters | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) from a GPU copy, one calling thread at a time."""
    with LOCK:
        return index.search(queries, k, params=params)


def clustering_index(dim: int) -> faiss.Index:
    """A flat L2 index on the GPU: the assignment step of k-means when training IVF coarse centroids
    (hold LOCK while it is used)."""
    return faiss.GpuIndexFlatL2(resources(), dim)
