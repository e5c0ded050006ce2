"""Which FAISS index for how many vectors, and building and training one (docs/search.md, "Index
types"): exact flat search for small collections, an HNSW graph for mid-size ones, and an inverted file
with an HNSW coarse quantizer and 4-bit product-quantised codes for large ones. VectorIndex (vectors.py)
keeps one of these in step with the catalog.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import faiss
import numpy as np

from mmsearch.storage import faiss_gpu

if TYPE_CHECKING:
    from mmsearch.config import IndexSettings

FLAT = "IDMap2,Flat"
HNSW = "IDMap2,HNSW32,Flat"
TRAIN_PER_LIST = 40  # k-means wants at least 39 training points per centroid
LEVELS = {"flat": 0, "hnsw": 1, "ivf": 2}


def nlist_for(n: int) -> int:
    """Inverted lists for n vectors: a power of two near 2 sqrt(n), at least 16."""
    return max(16, 1 << round(math.log2(max(2.0 * math.sqrt(n), 1.0))))


def pq_codes_for(dim: int) -> int:
    """Sub-quantisers for 4-bit PQ: one per 4 dimensions (64 bytes a 512-d vector), an even divisor."""
    m = max(2, dim // 4)
    while m > 2 and (dim % m or m % 2):
        m -= 1
    return m


def factory_for(n: int, dim: int, settings: IndexSettings) -> str:
    """The FAISS factory string for a collection of n vectors."""
    if settings.factory:
        return settings.factory
    if n <= settings.flat_max:
        return FLAT
    if n <= settings.hnsw_max:
        return HNSW
    return f"IVF{nlist_for(n)}_HNSW32,PQ{pq_codes_for(dim)}x4fsr"


def build_index(factory: str, dim: int) -> faiss.Index:
    """An empty inner-product index for `factory`, able to take caller ids (IDMap2 unless IVF)."""
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if ivf_of(index) is None and not isinstance(index, faiss.IndexIDMap2):
        index = faiss.IndexIDMap2(index)
    return index


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def train_index(index: faiss.Index, training: np.ndarray, gpu: bool = False) -> None:
    """Trains with k-means over exact (flat) assignment, on the GPU with `gpu`: through an HNSW coarse
    quantizer it is several times slower; the trained centroids still go into the HNSW graph."""
    ivf = ivf_of(index)
    gpu = gpu and ivf is not None
    flat = faiss_gpu.clustering_index(index.d) if gpu else faiss.IndexFlatL2(index.d)
    if ivf is not None:
        ivf.clustering_index = flat
        ivf.cp.niter = 10
    with faiss_gpu.LOCK if gpu else contextlib.nullcontext():
        index.train(training)
    if ivf is not None:
        ivf.clustering_index = None


def core_of(index: faiss.Index) -> faiss.Index:
    """The index under id maps and transforms."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2 | faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def level_of(index: faiss.Index) -> int:
    if ivf_of(index) is not None:
        return LEVELS["ivf"]
    return LEVELS["hnsw"] if isinstance(core_of(index), faiss.IndexHNSW) else LEVELS["flat"]
