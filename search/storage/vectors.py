"""VectorIndex: FAISS inner-product search over unit vectors, keyed by segment id.

The index type follows the collection's size (index_types.py): exact flat search for small collections,
an HNSW graph for mid-size ones, an inverted file with 4-bit product-quantised codes for large ones;
`IndexSettings.factory` overrides the choice. Approximate types only find candidates: the engine
rescores them with the catalog's stored float32 vectors.

The cache on disk is two files: FAISS's own bytes under a fresh name (so FAISS can memory-map them), and
a small JSON file at the cache's path, replaced atomically (temp file, fsync, rename, fsync of the
folder), that names the bytes and records the catalog generation they reflect, so a reader can tell a
stale cache from a current one. `IndexIDMap` accepts duplicate ids: callers pass ids the catalog made
unique.

With a GPU selected (`IndexSettings.gpu`, faiss_gpu.py), IVF training runs its k-means on the GPU
and searches without an id selector go to a GPU copy of the index where FAISS has one for its type
(flat, IVF with flat coarse quantizer); the copy is made again after a change. Everything else, and
everything without a GPU, runs on the CPU index, which stays the one saved and changed.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from mmsearch.defaults import IndexSearchDefaults
from mmsearch.errors import IndexStateError
from mmsearch.storage import faiss_gpu
from mmsearch.storage.index_types import (
    FLAT,
    TRAIN_PER_LIST,
    build_index,
    core_of,
    factory_for,
    ivf_of,
    level_of,
    nlist_for,
    train_index,
)

if TYPE_CHECKING:
    from mmsearch.config import IndexSettings

MAGIC_V1 = b"MMSVEC1\n"  # header + FAISS bytes in one file (read, never written)
MAGIC = b"MMSVEC2\n"  # header + JSON naming a separate FAISS file
HEADER_V1 = struct.Struct("<8sq")  # magic, catalog generation
COMPACT_FRACTION = 0.1  # deleted-but-present ids (types that cannot remove) above this share: rebuild
RANGE_SLACK = 0.1  # how much lower compressed scores may be than exact ones, for range search

VectorSource = Callable[[np.ndarray], np.ndarray]  # ids -> their exact float32 vectors, in that order


def _default_settings() -> IndexSettings:
    from mmsearch.config import IndexSettings  # pydantic: not for readers that pass IndexSearchDefaults

    return IndexSettings()


def _batch(ids: np.ndarray) -> faiss.IDSelectorBatch:
    return faiss.IDSelectorBatch(np.ascontiguousarray(ids, np.int64))


class VectorIndex:
    def __init__(
        self,
        dim: int,
        index: faiss.Index | None = None,
        factory: str = FLAT,
        settings: IndexSettings | IndexSearchDefaults | None = None,
        source: VectorSource | None = None,
    ):
        self.dim = dim
        self.index = index if index is not None else build_index(factory, dim)
        self.factory = factory
        self.settings = settings if settings is not None else _default_settings()
        self.source = source  # exact vectors for types whose codes are lossy (set by the Store)
        self.deleted = np.zeros(0, np.int64)  # removed ids still in an index that cannot remove
        self.mapped = False  # memory-mapped read-only pages: copied into memory before any change
        self._ids: np.ndarray | None = None  # sorted ids, cached between changes
        self._changes = 0  # counts adds and removes: a GPU copy made before the last one is stale
        self._gpu: tuple[int, faiss.Index | None] | None = None  # (changes, GPU copy or None) when made
        self._gpu_lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.index.ntotal) - len(self.deleted)

    @property
    def exact(self) -> bool:
        """Whether search is exhaustive with exact inner products (a flat index), not approximate."""
        return isinstance(core_of(self.index), faiss.IndexFlat)

    @property
    def lossless(self) -> bool:
        """Whether the index itself holds the float32 vectors (flat storage), so it can return them."""
        core = core_of(self.index)
        storage = faiss.downcast_index(core.storage) if isinstance(core, faiss.IndexHNSW) else core
        return isinstance(storage, faiss.IndexFlat) and ivf_of(self.index) is None

    def ids(self) -> np.ndarray:
        if self._ids is None:
            ids = self._stored_ids()
            self._ids = np.sort(ids[~np.isin(ids, self.deleted)]) if len(self.deleted) else np.sort(ids)
        return self._ids

    def _stored_ids(self) -> np.ndarray:
        ivf = ivf_of(self.index)
        if ivf is None:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        lists = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(ivf.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)} vectors of dimension {self.dim}, got {vectors.shape}")
        self._own()
        if np.isin(ids, self.deleted).any():
            self.compact()  # an id coming back must not meet its old copy
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, np.int64))
        self._ids = None
        self._changes += 1

    def remove(self, ids: np.ndarray) -> int:
        """Removes these ids; where FAISS cannot remove (HNSW), they are hidden from search and the
        index is rebuilt without them once they pass COMPACT_FRACTION of it."""
        if len(ids) == 0:
            return 0
        self._own()
        try:
            removed = int(self.index.remove_ids(_batch(ids)))
        except RuntimeError:
            return self._hide(ids)
        if removed:
            self._ids = None
            self._changes += 1
        return removed

    def _hide(self, ids: np.ndarray) -> int:
        ids = np.intersect1d(np.asarray(ids, np.int64), self.ids())
        self.deleted = np.union1d(self.deleted, ids)
        self._ids = None
        if len(self.deleted) > COMPACT_FRACTION * self.index.ntotal:
            self.compact()
        return len(ids)

    def compact(self) -> None:
        """Rebuilds the index without its hidden (deleted) ids."""
        if not len(self.deleted):
            return
        keep = self.ids()
        vectors = self.vectors(keep)
        self.index.reset()
        self.deleted = np.zeros(0, np.int64)
        self._ids = None
        self._changes += 1
        self.index.add_with_ids(vectors, keep)

    def _own(self) -> None:
        """Copies a memory-mapped index into memory: FAISS aborts on changes to mapped pages."""
        if self.mapped:
            self.index = faiss.deserialize_index(faiss.serialize_index(self.index))
            self.mapped = False

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Up to n stored (ids, vectors) drawn at random without replacement."""
        ids = self.ids()
        pick = np.sort(np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False))
        return pick, self.vectors(pick)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, (len(ids), dim) float32: from the index when it holds them,
        else from the exact source (the catalog)."""
        if len(ids) == 0:
            return np.zeros((0, self.dim), np.float32)
        ids = np.ascontiguousarray(ids, np.int64)
        if self.lossless or self.source is None:
            return self.index.reconstruct_batch(ids)
        return self.source(ids)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids of -1 pad rows with fewer than k results.

        `allowed` restricts the search to those ids inside FAISS, so a filter never starves top-k: the
        approximate types search wider for a narrow filter and fall back to exact search over the
        allowed vectors when they still come back short."""
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        k = max(1, min(int(k), len(self))) if len(self) else 1
        if allowed is not None:
            allowed = np.setdiff1d(np.asarray(allowed, np.int64), self.deleted)
        params = self._params(k, allowed)
        gpu = self._gpu_copy(k, params, selector=allowed is not None or len(self.deleted) > 0)
        if gpu is not None:
            scores, ids = faiss_gpu.search(gpu, queries, k, params)
        else:
            scores, ids = self.index.search(queries, k, params=params)
        if allowed is not None and not self.exact and (ids < 0).any():
            return self._search_allowed(queries, k, allowed, scores, ids)
        return scores, ids

    def _gpu_copy(self, k: int, params: faiss.SearchParameters | None, selector: bool) -> faiss.Index | None:
        """The GPU copy to run this search on, made after the last change, when the settings select a
        GPU and FAISS can search this type there; None sends the search to the CPU index (so do an id
        selector, which GPU indexes lack, and k or nprobe past the GPU's limit)."""
        if not faiss_gpu.use_gpu(self.settings.gpu):
            return None
        nprobe = params.nprobe if isinstance(params, faiss.SearchParametersIVF) else 0
        if selector or not len(self) or max(k, nprobe) > faiss_gpu.MAX_K:
            return None
        with self._gpu_lock:
            if self._gpu is None or self._gpu[0] != self._changes:
                changes = self._changes
                self._gpu = (changes, faiss_gpu.search_copy(self.index))
            return self._gpu[1]

    @property
    def gpu_search(self) -> bool:
        """Whether searches without an id selector run on a GPU copy (known after the first search)."""
        return self._gpu is not None and self._gpu[1] is not None

    def _params(self, k: int, allowed: np.ndarray | None) -> faiss.SearchParameters | None:
        """Search parameters: the id selector (filter, hidden ids) and nprobe / efSearch, raised by
        the inverse of the share of ids a filter lets through."""
        hidden = _batch(self.deleted) if allowed is None and len(self.deleted) else None
        if allowed is not None:
            sel = _batch(allowed)
        else:
            sel = faiss.IDSelectorNot(hidden) if hidden is not None else None
        share = min(1.0, max(len(allowed), 1) / max(len(self), 1)) if allowed is not None else 1.0
        ivf = ivf_of(self.index)
        if ivf is not None:
            nprobe = min(ivf.nlist, math.ceil(self.settings.nprobe / share))
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        elif isinstance(core_of(self.index), faiss.IndexHNSW):
            ef = min(max(len(self), k), math.ceil(max(self.settings.ef_search, k) / share))
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        if params is not None:
            params.referenced_selectors = (sel, hidden)  # alive as long as the parameters
        return params

    def _search_allowed(
        self, queries: np.ndarray, k: int, allowed: np.ndarray, scores: np.ndarray, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the allowed vectors for rows the approximate search left short."""
        present = np.intersect1d(allowed, self.ids())
        short = (ids >= 0).sum(axis=1) < min(k, len(present))
        if short.any():
            found = min(k, len(present))
            exact, rows = faiss.knn(queries[short], self.vectors(present), found, faiss.METRIC_INNER_PRODUCT)
            scores[short, :found], ids[short, :found] = exact, present[rows]
        return scores, ids

    def range_search(self, ids: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lims, scores, ids) of every vector scoring above `radius` with each of these stored vectors
        (see faiss.Index.range_search). Compressed types search RANGE_SLACK wider and keep what scores
        above `radius` exactly; approximate types may still miss some."""
        queries = self.vectors(ids)
        if self.lossless:
            return self.index.range_search(queries, radius, params=self._params(1, None))
        lims, _, found = self.index.range_search(queries, radius - RANGE_SLACK, params=self._params(1, None))
        rows = np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64))
        scores = np.einsum("ij,ij->i", queries[rows], self.vectors(found))
        keep = scores > radius
        counts = np.bincount(rows[keep], minlength=len(queries))
        return np.concatenate([[0], np.cumsum(counts)]).astype(lims.dtype), scores[keep], found[keep]

    def outgrown(self) -> str | None:
        """The factory string this index should switch to, or None while its type still fits: a higher
        level (flat -> HNSW -> IVF), an IVF with 4x fewer lists than its size wants, or another
        factory string set in the settings."""
        wanted = factory_for(len(self), self.dim, self.settings)
        if wanted == self.factory:
            return None
        if self.settings.factory:
            return wanted
        current, target = level_of(self.index), level_of(build_index(wanted, self.dim))
        ivf = ivf_of(self.index)
        if target > current or (ivf is not None and nlist_for(len(self)) >= 4 * ivf.nlist):
            return wanted
        return None

    def train(self, training: np.ndarray) -> None:
        """Trains a type that needs it (IVF, PQ) on these sample vectors."""
        if not self.index.is_trained:
            gpu = faiss_gpu.use_gpu(self.settings.gpu)
            train_index(self.index, np.ascontiguousarray(training, np.float32), gpu)

    def training_size(self) -> int:
        """How many sample vectors training this index wants (none for types without training)."""
        if self.index.is_trained:
            return 0
        ivf = ivf_of(self.index)
        lists = ivf.nlist if ivf is not None else 0
        return min(self.settings.train_max, max(TRAIN_PER_LIST * lists, 10_000))

    def save(self, path: Path, generation: int) -> None:
        """Writes the FAISS bytes under a fresh name, then points the file at `path` at them."""
        data = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}")
        faiss.write_index(self.index, str(data))
        _fsync(data)
        previous = _data_name(path)
        meta = {"generation": generation, "data": data.name, "factory": self.factory}
        meta["deleted"] = self.deleted.tolist()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with tmp.open("wb") as f:
            f.write(MAGIC + json.dumps(meta).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync(path.parent)
        if previous and previous != data.name:
            (path.parent / previous).unlink(missing_ok=True)

    @classmethod
    def load(
        cls,
        path: Path,
        dim: int,
        settings: IndexSettings | IndexSearchDefaults | None = None,
        mmap: bool = False,
    ) -> tuple[VectorIndex, int]:
        """Returns the index and the catalog generation it was saved at. With `mmap`, FAISS maps the
        flat codes of the file instead of reading them (pages shared between processes)."""
        raw = path.read_bytes()
        if raw[:8] == MAGIC_V1 and len(raw) >= HEADER_V1.size:
            _, generation = HEADER_V1.unpack_from(raw)
            index = faiss.deserialize_index(np.frombuffer(raw, np.uint8, offset=HEADER_V1.size))
            meta = {"factory": FLAT, "deleted": []}
        elif raw[:8] == MAGIC:
            meta = _meta(path, raw)
            generation = meta["generation"]
            flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
            index = faiss.read_index(str(path.parent / meta["data"]), flags)
        else:
            raise IndexStateError(f"{path} is not an mmsearch vector file")
        if index.d != dim:
            raise IndexStateError(f"{path} holds {index.d}-d vectors, the model makes {dim}-d")
        loaded = cls(dim, index, meta["factory"], settings)
        loaded.deleted = np.asarray(meta["deleted"], np.int64)
        loaded.mapped = mmap
        return loaded, generation


def _meta(path: Path, raw: bytes) -> dict:
    try:
        return json.loads(raw[len(MAGIC) :])
    except ValueError as exc:
        raise IndexStateError(f"{path} is not an mmsearch vector file: {exc}") from exc


def _data_name(path: Path) -> str | None:
    """The FAISS file the cache at `path` names now, if any (to delete once it is replaced)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return _meta(path, raw).get("data") if raw[:8] == MAGIC else None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
