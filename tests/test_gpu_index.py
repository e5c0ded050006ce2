"""FAISS on a GPU (search/storage/faiss_gpu.py): GPU search copies and GPU k-means where a GPU is, the same
results on the CPU where none is, and the routing between the two (checked anywhere with a stand-in)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from pydantic import ValidationError

from mmsearch.api.bench.search import queries_near, synthetic
from mmsearch.config import IndexSettings, Settings
from mmsearch.errors import ConfigError
from mmsearch.storage import faiss_gpu
from mmsearch.storage.index_types import FLAT, HNSW
from mmsearch.storage.vectors import VectorIndex

DIM = 64
OFFSET = 1000  # ids are not row numbers
IVF_PQ = "IVF64_HNSW32,PQ16x4fsr"  # the size-chosen IVF type: k-means on the GPU, search on the CPU
NO_GPU = faiss_gpu.no_gpu_reason()
needs_gpu = pytest.mark.skipif(NO_GPU is not None, reason=f"no GPU: {NO_GPU}")
without_gpu = pytest.mark.skipif(NO_GPU is None, reason="a GPU is present: the GPU tests cover it")


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


@pytest.fixture(scope="module")
def unit() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4000 random unit vectors with ids, and 20 queries."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4020, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(OFFSET, OFFSET + 4000, dtype=np.int64), x[:4000], x[4000:]


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5000 clustered unit vectors (like embeddings) with ids, and 50 queries near them."""
    base = synthetic(5000, DIM, seed=5)
    return np.arange(OFFSET, OFFSET + len(base), dtype=np.int64), base, queries_near(base, 50, seed=6)


def make(factory: str, ids: np.ndarray, base: np.ndarray, gpu: str) -> VectorIndex:
    index = VectorIndex(DIM, factory=factory, settings=IndexSettings(gpu=gpu))
    index.source = lambda wanted: base[np.asarray(wanted) - OFFSET]
    index.train(base)
    index.add(ids, base)
    return index


def rescored_recall(index: VectorIndex, ids: np.ndarray, base: np.ndarray, queries: np.ndarray) -> float:
    """recall@10 against exact search, after exact rescoring of the top 100 (the engine's two stages)."""
    truth = ids[faiss.knn(queries, base, 10, faiss.METRIC_INNER_PRODUCT)[1]]
    found = index.search(queries, 100)[1]
    hits = 0
    for q, row, true in zip(queries, found, truth, strict=True):
        row = row[row >= 0]
        hits += len(np.intersect1d(row[np.argsort(-(base[row - OFFSET] @ q))[:10]], true))
    return hits / truth.size


def assert_same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    """Same scores to 1e-4 and the same ids per row (the order of float near-ties aside)."""
    np.testing.assert_allclose(a[0], b[0], atol=1e-4)
    for x, y in zip(a[1], b[1], strict=True):
        assert set(x.tolist()) == set(y.tolist())


# --- with a GPU ---------------------------------------------------------------------------------------


@needs_gpu
def test_gpu_flat_search_matches_cpu_and_follows_changes(unit):
    ids, base, queries = unit
    cpu, gpu = make(FLAT, ids, base, "off"), make(FLAT, ids, base, "on")
    assert_same(gpu.search(queries, 10), cpu.search(queries, 10))
    assert gpu.gpu_search and not cpu.gpu_search
    assert_same(gpu.search(queries, 100), cpu.search(queries, 100))
    for index in (cpu, gpu):  # the GPU copy is made again after each change
        index.remove(ids[:500])
        index.add(ids[:100] + 10_000, base[:100])
    assert_same(gpu.search(queries, 10), cpu.search(queries, 10))
    allowed = ids[::7]  # an id selector: the CPU index answers
    assert np.array_equal(gpu.search(queries, 10, allowed)[1], cpu.search(queries, 10, allowed)[1])


@needs_gpu
def test_gpu_trained_ivf_recall_after_rescoring(clustered, monkeypatch):
    ids, base, queries = clustered
    made = []
    real = faiss_gpu.clustering_index
    monkeypatch.setattr(faiss_gpu, "clustering_index", lambda d: made.append(d) or real(d))
    index = make(IVF_PQ, ids, base, "on")
    assert made == [DIM]  # k-means assigned on the GPU
    assert rescored_recall(index, ids, base, queries) >= 0.95
    assert not index.gpu_search  # 4-bit fast-scan PQ has no GPU version: searched on the CPU


@needs_gpu
def test_gpu_ivf_flat_search_copy_matches_cpu(clustered):
    ids, base, queries = clustered
    cpu = make("IVF64,Flat", ids, base, "off")
    gpu = VectorIndex(DIM, faiss.clone_index(cpu.index), "IVF64,Flat", IndexSettings(gpu="on"))
    found_gpu, found_cpu = gpu.search(queries, 10)[1], cpu.search(queries, 10)[1]
    assert gpu.gpu_search
    overlap = np.mean([len(np.intersect1d(g, c)) / 10 for g, c in zip(found_gpu, found_cpu, strict=True)])
    assert overlap >= 0.99


@needs_gpu
def test_hnsw_stays_on_the_cpu_with_a_gpu(unit):
    ids, base, queries = unit
    index = make(HNSW, ids, base, "on")
    assert np.array_equal(index.search(queries, 10)[1], make(HNSW, ids, base, "off").search(queries, 10)[1])
    assert not index.gpu_search


# --- without a GPU ------------------------------------------------------------------------------------


@without_gpu
def test_gpu_on_without_a_gpu_is_a_clear_error(unit, clustered):
    ids, base, queries = unit
    index = VectorIndex(DIM, factory=FLAT, settings=IndexSettings(gpu="on"))
    index.add(ids, base)
    with pytest.raises(ConfigError, match=r"index\.gpu is 'on'"):
        index.search(queries, 10)
    with pytest.raises(ConfigError, match=r"no GPU support|sees no GPU"):
        make(IVF_PQ, *clustered[:2], "on")


@without_gpu
@pytest.mark.parametrize("factory", [FLAT, HNSW, IVF_PQ])
def test_gpu_auto_without_a_gpu_equals_off(clustered, factory):
    ids, base, queries = clustered
    auto, off = make(factory, ids, base, "auto"), make(factory, ids, base, "off")
    a, b = auto.search(queries, 20), off.search(queries, 20)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not auto.gpu_search
    assert faiss.serialize_index(auto.index).tobytes() == faiss.serialize_index(off.index).tobytes()


# --- anywhere -----------------------------------------------------------------------------------------


@pytest.fixture
def stand_in(monkeypatch) -> dict[str, int]:
    """A CPU stand-in for the GPU (a clone plays the GPU copy), counting what goes to it."""
    calls = {"copies": 0, "searches": 0, "kmeans": 0}

    def search_copy(index):
        calls["copies"] += 1
        return faiss.clone_index(index) if faiss_gpu._gpu_type(index) else None

    def search(index, queries, k, params=None):
        calls["searches"] += 1
        return index.search(queries, k, params=params)

    def clustering_index(d):
        calls["kmeans"] += 1
        return faiss.IndexFlatL2(d)

    monkeypatch.setattr(faiss_gpu, "use_gpu", lambda mode: mode != "off")
    monkeypatch.setattr(faiss_gpu, "search_copy", search_copy)
    monkeypatch.setattr(faiss_gpu, "search", search)
    monkeypatch.setattr(faiss_gpu, "clustering_index", clustering_index)
    return calls


def test_routing_to_the_gpu_copy(unit, stand_in):
    ids, base, queries = unit
    index, cpu = make(FLAT, ids, base, "on"), make(FLAT, ids, base, "off")
    assert_same(index.search(queries, 10), cpu.search(queries, 10))
    index.search(queries, 10)
    assert stand_in == {"copies": 1, "searches": 2, "kmeans": 0}  # one copy until a change
    index.search(queries, 10, ids[::3])  # an id selector: CPU
    index.search(queries, faiss_gpu.MAX_K + 1)  # past the GPU's k: CPU
    assert stand_in["searches"] == 2
    index.add(ids[:5] + 10_000, base[:5])
    cpu.add(ids[:5] + 10_000, base[:5])
    assert_same(index.search(queries, 10), cpu.search(queries, 10))
    assert stand_in["copies"] == 2
    index.remove(ids[:2000])
    cpu.remove(ids[:2000])
    assert_same(index.search(queries, 10), cpu.search(queries, 10))
    assert stand_in["copies"] == 3 and stand_in["searches"] == 4


def test_routing_keeps_unsupported_types_on_the_cpu(clustered, stand_in):
    ids, base, queries = clustered
    index = make(IVF_PQ, ids, base, "on")
    assert stand_in["kmeans"] == 1  # the coarse k-means ran on the (stand-in) GPU
    off = make(IVF_PQ, ids, base, "off")
    assert stand_in["kmeans"] == 1
    assert np.array_equal(index.search(queries, 10)[1], off.search(queries, 10)[1])
    index.search(queries, 10)
    assert stand_in["copies"] == 1 and stand_in["searches"] == 0 and not index.gpu_search


@pytest.mark.parametrize(
    ("factory", "on_gpu"),
    [
        (FLAT, True),
        (HNSW, False),
        (IVF_PQ, False),
        ("IDMap2,HNSW32_SQ8", False),
        ("IVF64,Flat", True),
        ("IVF64,SQ8", True),
        ("IVF64,PQ16", True),
        ("IVF64_HNSW32,Flat", False),
    ],
)
def test_which_types_faiss_can_search_on_a_gpu(factory, on_gpu):
    assert faiss_gpu._gpu_type(VectorIndex(DIM, factory=factory).index) == on_gpu


def test_gpu_setting(monkeypatch):
    assert IndexSettings().gpu == "auto"
    assert not faiss_gpu.use_gpu("off")
    with pytest.raises(ValidationError):
        IndexSettings(gpu="yes")
    monkeypatch.setenv("MMSEARCH_INDEX__GPU", "off")
    assert Settings().index.gpu == "off"
