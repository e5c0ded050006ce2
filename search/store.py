"""Store: one index folder (manifest, catalog, vector cache) kept in agreement.

Layout: manifest.json (format version, the model that made the vectors), catalog.sqlite (unless the
catalog lives at another SQLAlchemy URL) and vectors.faiss (a cache of the catalog's stored vectors).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from search.catalog import Catalog, ItemRecord
from search.config import Settings
from search.errors import IndexStateError, ModelMismatchError
from search.models import ModelSpec
from search.vectors import VectorIndex

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST, VECTORS, LOCK = "manifest.json", "vectors.faiss", "write.lock"


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexStateError(f"cannot read {path}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise IndexStateError(f"{path} has format {manifest.get('format')}, this mmsearch reads {FORMAT}")
    return manifest


def _no_index(folder: Path) -> IndexStateError:
    return IndexStateError(f"no index at {folder}: run `mmsearch index PATH` first")


def resolve_model(settings: Settings, create: bool = False) -> ModelSpec:
    """The model to use for an index: the one it records, unless another is asked for (an error).
    Without `create`, a missing index is an error before any model is loaded."""
    manifest = read_manifest(settings.index_dir)
    if manifest is None and not create:
        raise _no_index(settings.index_dir)
    asked = settings.model.name is not None or settings.model.random_weights
    if manifest is None or asked:
        spec = ModelSpec.from_settings(settings.model)
        if manifest is not None:
            check_model(manifest, spec.fingerprint, spec.label(), settings.index_dir)
        return spec
    m = manifest["model"]
    return ModelSpec(m["name"], m["pretrained"], m["random_weights"])


def check_model(manifest: dict, fingerprint: str, label: str, folder: Path) -> None:
    recorded = manifest["model"]
    if recorded["fingerprint"] != fingerprint:
        made_by = ModelSpec(recorded["name"], recorded["pretrained"], recorded["random_weights"]).label()
        raise ModelMismatchError(
            f"index {folder} was made with {made_by} (fingerprint {recorded['fingerprint']}); "
            f"its vectors cannot be mixed with or queried by {label} (fingerprint {fingerprint}). "
            "Use the index's own model (omit --model) or index into another folder."
        )


class Store:
    def __init__(self, folder: Path, catalog: Catalog, vectors: VectorIndex, manifest: dict):
        self.folder = folder
        self.catalog = catalog
        self.vectors = vectors
        self.manifest = manifest
        self.generation = -1
        self._mutex = threading.RLock()

    @classmethod
    def open(cls, settings: Settings, model_record: dict, create: bool = False) -> Store:
        folder = settings.index_dir
        manifest = read_manifest(folder)
        if manifest is None:
            if not create:
                raise _no_index(folder)
            folder.mkdir(parents=True, exist_ok=True)
            manifest = {
                "format": FORMAT,
                "model": model_record,
                "metric": "inner_product",
                "faiss": "IDMap2,Flat",
            }
            _write_json(folder / MANIFEST, manifest)
        check_model(manifest, model_record["fingerprint"], model_record["name"], folder)
        dim = manifest["model"]["dim"]
        vectors, generation = VectorIndex(dim), -1
        if (folder / VECTORS).exists():
            try:
                vectors, generation = VectorIndex.load(folder / VECTORS, dim)
            except (IndexStateError, RuntimeError) as exc:
                log.warning(
                    "rebuilding the unreadable vector cache %s from the catalog: %s", folder / VECTORS, exc
                )
                vectors, generation = VectorIndex(dim), -1
        store = cls(folder, Catalog(settings.catalog_url()), vectors, manifest)
        store.generation = generation
        store.refresh()
        return store

    def refresh(self) -> bool:
        """Bring the vector cache up to the catalog if another process (or a crash) left it behind."""
        with self._mutex:
            generation = self.catalog.generation()
            if generation == self.generation:
                return False
            in_catalog, in_index = self.catalog.all_segment_ids(), self.vectors.ids()
            self.vectors.remove(np.setdiff1d(in_index, in_catalog))
            missing = np.setdiff1d(in_catalog, in_index)
            for ids, vecs in self.catalog.vectors(missing):
                self.vectors.add(ids, vecs)
            self.generation = generation
            return True

    def rebuild(self) -> int:
        """Drop the vector cache and build it again from the stored vectors."""
        with self._mutex:
            self.vectors = VectorIndex(self.vectors.dim)
            self.generation = -1
            self.refresh()
            self.save()
            return len(self.vectors)

    def write(
        self,
        records: Sequence[ItemRecord],
        touched: Sequence[tuple[int, int]] = (),
        removed_uris: Sequence[str] = (),
    ) -> None:
        """Commit one batch to the catalog, then mirror it in the vector cache."""
        with self._mutex:
            self.refresh()
            result = self.catalog.write(records, touched, removed_uris)
            self.vectors.remove(result.removed_ids)
            self.vectors.add(result.added_ids, result.added_vectors)
            self.generation = result.generation

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None):
        with self._mutex:
            self.refresh()
            return self.vectors.search(queries, k, allowed)

    def save(self) -> None:
        with self._mutex:
            self.vectors.save(self.folder / VECTORS, self.generation)

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Exclusive right to write this index, across processes."""
        with (self.folder / LOCK).open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexStateError(f"another process is writing to the index at {self.folder}") from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def close(self) -> None:
        self.catalog.close()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
