"""VectorIndex: FAISS inner-product search over unit vectors, keyed by segment id.

The file on disk is a cache of the catalog's stored vectors. It is written atomically (temp file,
fsync, rename, fsync of the folder) together with the catalog generation it reflects, so a reader can
tell a stale cache from a current one. FAISS's own `write_index` overwrites in place without fsync, and
`IndexIDMap` accepts duplicate ids: callers pass ids the catalog made unique.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import faiss
import numpy as np

from search.errors import IndexStateError

MAGIC = b"MMSVEC1\n"
HEADER = struct.Struct("<8sq")  # magic, catalog generation


class VectorIndex:
    def __init__(self, dim: int, index: faiss.Index | None = None):
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def exact(self) -> bool:
        """Whether scores are exact inner products (a flat index), not approximations."""
        inner = faiss.downcast_index(self.index.index) if hasattr(self.index, "index") else self.index
        return isinstance(inner, faiss.IndexFlat)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)} vectors of dimension {self.dim}, got {vectors.shape}")
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self.index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, np.int64))))

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Up to n stored (ids, vectors) drawn at random without replacement."""
        ids = self.ids()
        pick = np.sort(np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False))
        return pick, self.vectors(pick)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, (len(ids), dim) float32."""
        if len(ids) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.index.reconstruct_batch(np.ascontiguousarray(ids, np.int64))

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids of -1 pad rows with fewer than k results.

        `allowed` restricts the search to those ids inside FAISS, so a filter never starves top-k.
        """
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        k = max(1, min(k, len(self))) if len(self) else 1
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(
                sel=faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64))
            )
        return self.index.search(queries, k, params=params)

    def save(self, path: Path, generation: int) -> None:
        data = faiss.serialize_index(self.index)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with tmp.open("wb") as f:
            f.write(HEADER.pack(MAGIC, generation))
            f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path, dim: int) -> tuple[VectorIndex, int]:
        """Returns the index and the catalog generation it was saved at."""
        raw = path.read_bytes()
        if len(raw) < HEADER.size or raw[:8] != MAGIC:
            raise IndexStateError(f"{path} is not an mmsearch vector file")
        _, generation = HEADER.unpack_from(raw)
        index = faiss.deserialize_index(np.frombuffer(raw, np.uint8, offset=HEADER.size))
        if index.d != dim:
            raise IndexStateError(f"{path} holds {index.d}-d vectors, the model makes {dim}-d")
        return cls(dim, index), generation


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
