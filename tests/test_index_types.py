"""Index types chosen by size: exact top-k after rescoring, recall, growth, deletes, filters, mmap."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from mmsearch.api.bench.search import queries_near, synthetic
from mmsearch.config import IndexSettings, Settings
from mmsearch.storage.index_types import FLAT, HNSW, factory_for
from mmsearch.storage.layout import vectors_file
from mmsearch.storage.schema import ItemRecord, SegmentRecord
from mmsearch.storage.store import Store
from mmsearch.storage.vectors import HEADER_V1, MAGIC_V1, VectorIndex
from tests.conftest import assert_same_top_k

DIM = 32
OFFSET = 1000  # ids are not row numbers
IVF_PQ = "IVF16_HNSW32,PQ16x4fsr"
TYPES = [FLAT, HNSW, "IDMap2,HNSW32_SQ8", "IVF16_HNSW32,SQ8", IVF_PQ]
RECORD = {"name": "synthetic", "pretrained": None, "random_weights": True, "fingerprint": "t", "dim": DIM}


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = synthetic(3000, DIM)
    return np.arange(OFFSET, OFFSET + len(base), dtype=np.int64), base, queries_near(base, 30)


def make(factory: str, ids: np.ndarray, base: np.ndarray, **settings) -> VectorIndex:
    index = VectorIndex(DIM, factory=factory, settings=IndexSettings(**settings))
    index.source = lambda wanted: base[np.asarray(wanted) - OFFSET]
    index.train(base)
    index.add(ids, base)
    return index


def brute(ids: np.ndarray, base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(queries @ base.T), axis=1)[:, :k]]


def exact(base: np.ndarray, queries: np.ndarray):
    """Exact scores of ids (offset row numbers) for query row r: what the top-k comparisons compare."""
    return lambda r, found: base[np.asarray(found) - OFFSET] @ queries[r]


def rescore(index: VectorIndex, base: np.ndarray, queries: np.ndarray, k: int, candidates: int = 100, **kw):
    """The engine's two stages: top candidates from FAISS, then exact inner products."""
    _, found = index.search(queries, candidates, **kw)
    out = []
    for q, row in zip(queries, found, strict=True):
        row = row[row >= 0]
        out.append(row[np.argsort(-(base[row - OFFSET] @ q))[:k]])
    return np.stack(out)


@pytest.mark.parametrize("factory", TYPES)
def test_each_type_returns_the_exact_top_k_after_rescoring(data, factory):
    ids, base, queries = data
    index = make(factory, ids, base)
    assert index.exact == (factory == FLAT)
    assert_same_top_k(rescore(index, base, queries, 10), brute(ids, base, queries, 10), exact(base, queries))


@pytest.mark.parametrize("factory", [HNSW, "IDMap2,HNSW32_SQ8", "IVF64_HNSW32,SQ8", "IVF64_HNSW32,PQ32x4fsr"])
def test_recall_at_10_on_20k_vectors(factory):
    """Search parameters (efSearch, nprobe) give recall@10 >= 0.95 before rescoring; for the 4-bit PQ
    type, whose codes alone cannot order near-ties, the true top 10 are among the candidates rescored."""
    base = synthetic(20_000, 128, seed=3)
    queries = queries_near(base, 100, seed=4)
    truth = faiss.knn(queries, base, 10, faiss.METRIC_INNER_PRODUCT)[1]
    index = VectorIndex(128, factory=factory)
    index.train(base[:10_000])
    index.add(np.arange(len(base)), base)
    depth = 100 if "PQ" in factory else 10
    found = index.search(queries, depth)[1]
    recall = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95, recall


@pytest.mark.parametrize("factory", TYPES)
def test_deletes_work_for_every_type(data, factory):
    ids, base, queries = data
    index = make(factory, ids, base)
    assert index.remove(ids[:50]) == 50  # few: HNSW hides them
    assert index.remove(ids[:50]) == 0, "removing twice counts nothing"
    assert len(index) == len(ids) - 50 and np.array_equal(index.ids(), ids[50:])
    assert not np.isin(index.search(queries, 50)[1], ids[:50]).any()
    assert index.remove(ids[50:600]) == 550  # many: HNSW rebuilds without them
    assert len(index) == len(ids) - 600 and np.array_equal(index.ids(), ids[600:])
    assert len(index.deleted) == 0
    index.add(ids[:10], base[:10])  # ids may come back, once
    assert np.array_equal(index.ids(), np.concatenate([ids[:10], ids[600:]]))
    live = np.isin(ids, index.ids())
    got = rescore(index, base, queries, 10)
    assert_same_top_k(got, brute(ids[live], base[live], queries, 10), exact(base, queries))


@pytest.mark.parametrize("factory", TYPES)
@pytest.mark.parametrize("share", [0.01, 0.3])
def test_filtered_search_for_every_type(data, factory, share):
    ids, base, queries = data
    index = make(factory, ids, base)
    index.remove(ids[:20])
    allowed = np.random.default_rng(5).choice(ids, int(share * len(ids)), replace=False)
    allowed_live = np.setdiff1d(allowed, ids[:20])
    _, found = index.search(queries, 10, allowed=allowed)
    assert (found >= 0).all(), "a filter must not starve top-k"
    assert np.isin(found, allowed_live).all()
    rows = np.isin(ids, allowed_live)
    got = rescore(index, base, queries, 10, candidates=min(100, rows.sum()), allowed=allowed)
    assert_same_top_k(got, brute(ids[rows], base[rows], queries, 10), exact(base, queries))


@pytest.mark.parametrize("factory", TYPES)
def test_mmap_load_searches_and_copies_before_changing(tmp_path: Path, data, factory):
    ids, base, queries = data
    index = make(factory, ids, base)
    index.remove(ids[:5])
    index.save(tmp_path / "v.faiss", generation=7)
    index.save(tmp_path / "v.faiss", generation=8)
    assert len(list(tmp_path.iterdir())) == 2, "the replaced FAISS file is deleted"
    loaded, generation = VectorIndex.load(tmp_path / "v.faiss", DIM, mmap=True)
    assert generation == 8 and loaded.mapped and loaded.factory == factory
    assert np.array_equal(loaded.ids(), index.ids())
    assert np.array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
    loaded.add(ids[:5], base[:5])
    assert not loaded.mapped and len(loaded) == len(ids)


def test_old_single_file_caches_still_load(tmp_path: Path, data):
    ids, base, queries = data
    index = make(FLAT, ids, base)
    path = tmp_path / "v.faiss"
    path.write_bytes(HEADER_V1.pack(MAGIC_V1, 3) + faiss.serialize_index(index.index).tobytes())
    loaded, generation = VectorIndex.load(path, DIM)
    assert generation == 3 and np.array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])


def test_factory_follows_size_and_settings():
    s = IndexSettings(flat_max=100, hnsw_max=1000)
    assert factory_for(100, 512, s) == FLAT
    assert factory_for(1000, 512, s) == HNSW
    assert factory_for(1_000_000, 512, s) == "IVF2048_HNSW32,PQ128x4fsr"
    assert factory_for(10, 512, IndexSettings(factory="IDMap2,HNSW16,Flat")) == "IDMap2,HNSW16,Flat"


def records(start: int, count: int, base: np.ndarray) -> list[ItemRecord]:
    return [
        ItemRecord(f"/v/{i}.jpg", "image", 1, 1, segments=[SegmentRecord("image", vector=base[i])])
        for i in range(start, start + count)
    ]


def check_ids(store: Store) -> np.ndarray:
    ids = store.vectors["image"].ids()
    assert len(np.unique(ids)) == len(ids), "no id twice"
    assert np.array_equal(np.sort(ids), np.sort(store.catalog.segment_ids_by_space()["image"])), "no id lost"
    return ids


@pytest.mark.parametrize("background", [False, True])
def test_growing_past_thresholds_switches_type_without_losing_an_id(tmp_path: Path, data, background):
    _, base, queries = data
    index = IndexSettings(flat_max=300, hnsw_max=900, background=background)
    store = Store.open(Settings(index_dir=tmp_path, index=index), RECORD, create=True)
    seen = []
    for start in range(0, 1200, 150):
        store.write(records(start, 150, base), removed_uris=[f"/v/{start - 7}.jpg"] if start else ())
        check_ids(store)
        seen.append(store.vectors["image"].factory)
    store.wait()
    seen.append(store.vectors["image"].factory)
    check_ids(store)
    assert seen[0] == FLAT and HNSW in seen and seen[-1].startswith("IVF"), seen
    store.write([], removed_uris=[f"/v/{i}.jpg" for i in range(20, 40)])  # deletes after the switch
    ids = check_ids(store)
    assert len(ids) == 1200 - 7 - 20
    _, found = store.search("image", queries[:5], 10)
    assert np.isin(found, ids).all()
    store.save()
    store.close()
    reopened = Store.open(Settings(index_dir=tmp_path, index=index), RECORD)
    assert reopened.vectors["image"].factory == seen[-1]
    assert np.array_equal(np.sort(check_ids(reopened)), np.sort(ids))
    reopened.close()


def test_store_memory_maps_its_caches(tmp_path: Path, data):
    _, base, _ = data
    store = Store.open(Settings(index_dir=tmp_path), RECORD, create=True)
    store.write(records(0, 100, base))
    store.save()
    store.close()
    mapped = Store.open(Settings(index_dir=tmp_path, index=IndexSettings(mmap=True)), RECORD)
    assert mapped.vectors["image"].mapped and len(mapped) == 100
    mapped.write(records(100, 10, base))  # copied into memory first, not an abort
    assert len(mapped) == 110 and vectors_file(tmp_path, "image").exists()
    mapped.close()


@pytest.mark.parametrize("factory", TYPES)
def test_range_search_scores_exactly_and_skips_deleted_ids(data, factory):
    """What duplicate detection relies on (Store.neighbours): exact scores, nothing below the radius,
    nothing deleted, and (compressed codes being approximate) nearly everything above it."""
    ids, base, _ = data
    index = make(factory, ids, base)
    index.remove(ids[:20])
    lims, scores, found = index.range_search(ids[20:40], 0.8)
    sims = base[20:40] @ base[20:].T
    hits = wanted = 0
    for row in range(20):
        got = found[lims[row] : lims[row + 1]]
        truth = ids[20:][sims[row] > 0.8]
        assert np.isin(got, truth).all()
        np.testing.assert_allclose(
            scores[lims[row] : lims[row + 1]], base[got - OFFSET] @ base[20 + row], atol=1e-5
        )
        hits, wanted = hits + len(got), wanted + len(truth)
    assert hits == wanted if index.lossless else hits >= 0.95 * wanted


def test_bench_search_memory_maps_large_sets_with_the_same_rows(tmp_path: Path, monkeypatch):
    """Vector sets over the limit are written to a memory-mapped file (the 10M run) with the same
    values; the ground truth searched slice by slice equals one exact search; types whose float32
    copy would not fit are skipped with the reason."""
    from mmsearch.api.bench import search as bench

    in_memory = bench.synthetic(3000, 32)
    monkeypatch.setattr(bench, "SCRATCH_ABOVE", 0)
    monkeypatch.setattr(bench, "TRUTH_CHUNK", 700)
    (tmp_path / "direct").mkdir()
    mapped = bench.synthetic_in(3000, 32, tmp_path / "direct")
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, in_memory)
    q = bench.queries_near(in_memory, 50)
    expected = faiss.knn(q, in_memory, 10, faiss.METRIC_INNER_PRODUCT)[1]
    assert_same_top_k(bench.exact_top(q, mapped, 10), expected, lambda r, found: in_memory[found] @ q[r])
    del mapped

    monkeypatch.setattr(bench, "memory_bytes", lambda: 3000 * 32 * 4)  # room for half of it
    (tmp_path / "bench").mkdir()
    result = bench.bench_search(
        [3000], 32, ["flat", "ivf_pq"], queries=20, scratch=tmp_path / "bench", gpu="off"
    )
    assert [r["type"] for r in result["rows"]] == ["ivf_pq"]
    assert result["rows"][0]["recall_rescored"] >= 0.95
    assert result["too_large"] == ["flat at 3,000: 0.0 GiB of float32 vectors in 0.0 GiB of memory"]
    assert list((tmp_path / "bench").iterdir()) == [], "the scratch file is removed"


def test_rescored_candidates_grow_past_a_million_vectors():
    """4-bit PQ orders a denser neighbourhood less well: one more `base` of candidates per tenfold
    past 1M (at 10M the top 200 give recall 0.97 where the top 100 gave 0.91, docs/benchmarks.md)."""
    from mmsearch.defaults import candidates_for

    assert [candidates_for(n) for n in (50_000, 1_000_000)] == [100, 100]
    assert [candidates_for(n) for n in (1_000_001, 10_000_000, 10_000_001)] == [200, 200, 300]
    assert candidates_for(10_000_000, base=30) == 60
