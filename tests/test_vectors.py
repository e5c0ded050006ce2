"""VectorIndex against brute-force ground truth on synthetic unit vectors."""

from pathlib import Path

import numpy as np
import pytest

from mmsearch.errors import IndexStateError
from mmsearch.storage.vectors import VectorIndex
from tests.conftest import assert_same_top_k


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return np.arange(1000, 3000, dtype=np.int64), unit(rng, 2000, 32), unit(rng, 50, 32)


def brute(ids, base, queries, k):
    scores = queries @ base.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


def test_search_matches_brute_force(data):
    ids, base, queries = data
    index = VectorIndex(32)
    index.add(ids, base)
    scores, got = index.search(queries, 10)
    want_scores, want = brute(ids, base, queries, 10)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert_same_top_k(got, want, lambda r, found: base[found - 1000] @ queries[r])


def test_remove_and_allowed_ids(data):
    ids, base, queries = data
    index = VectorIndex(32)
    index.add(ids, base)
    assert index.remove(ids[:500]) == 500
    assert len(index) == 1500
    _, got = index.search(queries, 20)
    assert not np.isin(got, ids[:500]).any()
    allowed = ids[500::100]  # 15 ids, 1% of what is left
    _, got = index.search(queries, 10, allowed=allowed)
    assert np.isin(got, allowed).all() and (got >= 0).all(), "a filter must not starve top-k"
    _, want = brute(allowed, base[np.isin(ids, allowed)], queries, 10)
    assert_same_top_k(got, want, lambda r, found: base[found - 1000] @ queries[r])


def test_save_load_round_trip(tmp_path: Path, data):
    ids, base, queries = data
    index = VectorIndex(32)
    index.add(ids, base)
    index.save(tmp_path / "v.faiss", generation=42)
    loaded, generation = VectorIndex.load(tmp_path / "v.faiss", 32)
    assert generation == 42
    assert np.array_equal(np.sort(loaded.ids()), ids)
    assert np.array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])
    assert not list(tmp_path.glob(".*tmp*")), "no temp file is left behind"


def test_load_refuses_foreign_or_wrong_dimension(tmp_path: Path, data):
    ids, base, _ = data
    (tmp_path / "junk.faiss").write_bytes(b"not a faiss file at all")
    with pytest.raises(IndexStateError):
        VectorIndex.load(tmp_path / "junk.faiss", 32)
    index = VectorIndex(32)
    index.add(ids, base)
    index.save(tmp_path / "v.faiss", 1)
    with pytest.raises(IndexStateError, match="32-d"):
        VectorIndex.load(tmp_path / "v.faiss", 64)


def test_add_checks_shape(data):
    ids, base, _ = data
    with pytest.raises(ValueError):
        VectorIndex(16).add(ids, base)
