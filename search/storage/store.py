"""Store: one index folder (manifest, catalog, vector cache) kept in agreement.

Layout: manifest.json (format version, the model that made the vectors), catalog.sqlite (unless the
catalog lives at another SQLAlchemy URL) and one FAISS file per vector space, vectors-image.faiss and
vectors-text.faiss (caches of the catalog's stored vectors). Pictures (images, video keyframes) and words
(transcripts) keep separate indexes: their scores against a query live on different scales, so the
engine searches each and fuses the results (docs/search.md).
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

from mmsearch.config import IndexSettings, Settings
from mmsearch.encode import query_tower, word_tower
from mmsearch.encode.sentences import CLIP, DEFAULT_TEXT_MODEL, short_name
from mmsearch.encode.spec import ModelSpec
from mmsearch.errors import IndexStateError, ModelMismatchError
from mmsearch.hits import IMAGE_SPACE, SPACES, TEXT_SPACE
from mmsearch.storage.catalog import Catalog
from mmsearch.storage.index_types import FLAT
from mmsearch.storage.layout import FORMAT, LOCK, MANIFEST, read_manifest, vectors_file
from mmsearch.storage.schema import ItemRecord
from mmsearch.storage.vectors import VectorIndex

log = logging.getLogger(__name__)


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


def recorded_text_model(manifest: dict) -> dict:
    """The index's text model; an index made before text models existed used the picture model's tower."""
    m = manifest["model"]
    return m.get("text_model") or {"name": CLIP, "dim": m["dim"], "fingerprint": m["fingerprint"]}


def space_dims(manifest: dict) -> dict[str, int]:
    return {IMAGE_SPACE: manifest["model"]["dim"], TEXT_SPACE: recorded_text_model(manifest)["dim"]}


def resolve_text_model(settings: Settings, create: bool = False) -> str:
    """The text model to use for an index: the one it records, unless another is asked for (an error);
    a new index takes the one asked for, else the default."""
    asked = settings.model.text_model
    manifest = read_manifest(settings.index_dir)
    if manifest is None:
        if not create:
            raise _no_index(settings.index_dir)
        return asked or DEFAULT_TEXT_MODEL
    recorded = recorded_text_model(manifest)["name"]
    if asked is not None and short_name(asked) != recorded and not Path(asked).is_dir():
        raise ModelMismatchError(
            f"index {settings.index_dir} embeds what is said and written with {recorded}; it cannot be "
            f"searched or extended with {asked}. Omit the text model or index into another folder."
        )
    return asked or recorded


def check_text_model(manifest: dict, record: dict, folder: Path) -> None:
    recorded = recorded_text_model(manifest)
    if recorded["fingerprint"] != record["fingerprint"]:
        raise ModelMismatchError(
            f"index {folder} embeds words with {recorded['name']} ({recorded['dim']} dimensions); they "
            f"cannot be mixed with or searched by {record['name']} ({record['dim']} dimensions)"
        )


class Store:
    def __init__(
        self,
        folder: Path,
        catalog: Catalog,
        vectors: dict[str, VectorIndex],
        manifest: dict,
        generation: int,
        index_settings: IndexSettings | None = None,
    ):
        self.folder = folder
        self.catalog = catalog
        self.index_settings = index_settings or IndexSettings()
        self.vectors = vectors  # one index per space
        for index in vectors.values():
            self._attach(index)
        self.manifest = manifest
        self.generation = generation
        self._mutex = threading.RLock()
        self._builders: dict[str, threading.Thread | None] = {}  # spaces whose next index type is being built

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
        check_text_model(manifest, recorded_text_model({"model": model_record}), folder)
        dims = space_dims(manifest)
        loaded = {s: _load_vectors(vectors_file(folder, s), dims[s], settings.index) for s in SPACES}
        generations = {g for _, g in loaded.values()}
        # The caches are used only when all were saved at one generation; else all are reconciled.
        generation = generations.pop() if len(generations) == 1 else -1
        vectors = {space: index for space, (index, _) in loaded.items()}
        store = cls(folder, Catalog(settings.catalog_url()), vectors, manifest, generation, settings.index)
        store.refresh()
        store.grow()
        return store

    def keep_query_tower(self, source: Path) -> None:
        """A copy of the model's query tower in the index folder, so a one-shot search finds it without
        loading the model (search/query/quick.py); a read-only folder only loses that shortcut."""
        target = self.folder / query_tower.FOLDER
        if query_tower.usable(target, self.manifest["model"]["fingerprint"]) is None:
            try:
                query_tower.copy(source, target)
            except OSError as exc:
                log.warning("cannot keep the query tower in %s: %s", target, exc)

    def keep_word_tower(self, source: Path) -> None:
        """The same for the text model's ONNX graph (search/encode/word_tower.py), so a one-shot search
        on an index with transcripts needs no torch either."""
        target = self.folder / word_tower.FOLDER
        if word_tower.usable(target, recorded_text_model(self.manifest)["fingerprint"]) is None:
            try:
                word_tower.copy(source, target)
            except OSError as exc:
                log.warning("cannot keep the text model's graph in %s: %s", target, exc)

    def __len__(self) -> int:
        return sum(len(v) for v in self.vectors.values())

    def refresh(self) -> bool:
        """Bring the vector caches up to the catalog if another process (or a crash) left them behind."""
        with self._mutex:
            generation = self.catalog.generation()
            if generation == self.generation:
                return False
            for space, in_catalog in self.catalog.segment_ids_by_space().items():
                self._reconcile(self.vectors.setdefault(space, self._empty(space)), in_catalog)
            self.generation = generation
            self.grow()
            return True

    def _reconcile(self, index: VectorIndex, in_catalog: np.ndarray) -> None:
        """Make the index hold exactly these ids, with the catalog's vectors."""
        in_index = index.ids()
        index.remove(np.setdiff1d(in_index, in_catalog))
        for ids, vecs in self.catalog.vectors(np.setdiff1d(in_catalog, in_index)):
            index.add(ids, vecs)

    def _empty(self, space: str, factory: str = FLAT) -> VectorIndex:
        return self._attach(VectorIndex(self.dims[space], factory=factory))

    def _attach(self, index: VectorIndex) -> VectorIndex:
        """Give the index the settings and the catalog as the source of exact vectors."""
        index.settings = self.index_settings
        index.source = self._stored_vectors
        return index

    def _stored_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The catalog's float32 vectors of these ids, in the order asked."""
        chunks = list(self.catalog.vectors(ids))
        got = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.int64)
        at = np.searchsorted(got, ids)
        if len(got) == 0 or not np.array_equal(got[np.minimum(at, len(got) - 1)], ids):
            raise IndexStateError("the catalog lacks vectors the index holds: run `mmsearch rebuild`")
        return np.concatenate([c[1] for c in chunks])[at]

    def grow(self) -> None:
        """Switch the index type of every space that outgrew its own (search/storage/vectors.py), in a
        background thread unless the settings say otherwise."""
        with self._mutex:
            for space, index in self.vectors.items():
                factory = index.outgrown()
                if factory is None or space in self._builders:
                    continue
                if not self.index_settings.background:
                    self._builders[space] = None
                    self._switch(space, factory)
                    continue
                thread = threading.Thread(
                    target=self._switch, args=(space, factory), name=f"mmsearch-index-{space}", daemon=True
                )
                self._builders[space] = thread
                thread.start()

    def _switch(self, space: str, factory: str) -> None:
        """Build a `factory` index of the space from the catalog's vectors (trained on a random sample),
        then swap it in under the mutex, reconciled with whatever was written meanwhile."""
        try:
            ids = self.catalog.segment_ids_by_space().get(space, np.zeros(0, np.int64))
            new = self._empty(space, factory)
            wanted = min(len(ids), new.training_size())
            if wanted:
                new.train(self._stored_vectors(np.random.default_rng(0).choice(ids, wanted, replace=False)))
            for chunk_ids, vecs in self.catalog.vectors(ids):
                new.add(chunk_ids, vecs)
            with self._mutex:
                self.refresh()
                self._reconcile(new, self.catalog.segment_ids_by_space().get(space, np.zeros(0, np.int64)))
                self.vectors[space] = new
                log.info("vector index %s: %s, %d vectors", space, factory, len(new))
                self._save_switched()
        except Exception:
            log.exception("building a %s index for %s failed; the old index stays", factory, space)
        finally:
            self._builders.pop(space, None)

    def _save_switched(self) -> None:
        try:
            self.save()
        except OSError as exc:
            log.warning("cannot save the rebuilt vector cache in %s: %s", self.folder, exc)

    def wait(self) -> None:
        """Wait for index types being switched in the background."""
        for thread in list(self._builders.values()):
            if thread is not None:
                thread.join()

    @property
    def dim(self) -> int:
        """The picture space's width (the picture model's)."""
        return self.manifest["model"]["dim"]

    @property
    def dims(self) -> dict[str, int]:
        return space_dims(self.manifest)

    def rebuild(self) -> int:
        """Drop the vector cache and build it again from the stored vectors."""
        with self._mutex:
            self.vectors = {space: self._empty(space) for space in SPACES}
            self.generation = -1
            self.refresh()
            self.save()
            return len(self)

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
            for index in self.vectors.values():
                index.remove(result.removed_ids)
            for space in set(result.added_spaces):
                rows = [i for i, s in enumerate(result.added_spaces) if s == space]
                index = self.vectors.setdefault(space, self._empty(space))
                index.add(result.added_ids[rows], np.stack([result.added_vectors[i] for i in rows]))
            self.generation = result.generation
            self.grow()

    def search(self, space: str, queries: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """Top-k (scores, segment ids) per query among one space's vectors."""
        with self._mutex:
            self.refresh()
            return self.vectors[space].search(queries, k, allowed)

    def sample(self, space: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Up to n of a space's (ids, vectors), drawn at random (a fixed seed: the same sample each time)."""
        with self._mutex:
            self.refresh()
            return self.vectors[space].sample(n, seed)

    def neighbours(self, space: str, ids: np.ndarray, radius: float):
        """FAISS range search from these stored vectors: (lims, scores, ids) of every vector scoring
        above `radius` with each (see faiss.Index.range_search)."""
        with self._mutex:
            self.refresh()
            return self.vectors[space].range_search(ids, radius)

    def vectors_of(self, space: str, ids: np.ndarray) -> np.ndarray:
        with self._mutex:
            return self.vectors[space].vectors(ids)

    def save(self) -> None:
        with self._mutex:
            for space, index in self.vectors.items():
                index.save(vectors_file(self.folder, space), self.generation)

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
        self.wait()
        self.catalog.close()


def _load_vectors(path: Path, dim: int, settings: IndexSettings) -> tuple[VectorIndex, int]:
    """A saved vector cache and its generation; an absent or unreadable one is empty, at generation -1."""
    if not path.exists():
        return VectorIndex(dim), -1
    try:
        return VectorIndex.load(path, dim, settings, mmap=settings.mmap)
    except (IndexStateError, RuntimeError, OSError) as exc:
        log.warning("rebuilding the unreadable vector cache %s from the catalog: %s", path, exc)
        return VectorIndex(dim), -1


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
