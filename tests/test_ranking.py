"""Two-stage ranking: exact rescoring behind an approximate index, and a real second-model reranker."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from mmsearch import Engine
from mmsearch.query.rerank import ClipReranker, rerank
from mmsearch.storage.schema import ItemRecord, SegmentRecord
from mmsearch.storage.vectors import VectorIndex
from mmsearch.synth.shapes import caption, class_of, classes
from tests.conftest import TINY, index_heldout_shapes

N, K = 3000, 10
PER_CLASS = 3  # held-out images per shapes class in the rerank test


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_rescoring_makes_an_approximate_index_return_the_brute_force_top_k(engine):
    rng = np.random.default_rng(0)
    dim = engine.encoder.dim
    vectors = _unit(rng.normal(size=(N, dim)))
    records = [
        ItemRecord(f"/v/{i}.jpg", "image", 1, 1, segments=[SegmentRecord("image", vector=vectors[i])])
        for i in range(N)
    ]
    engine.store.write(records)
    ids = engine.store.vectors["image"].ids()
    # A product quantiser (8 sub-vectors of 4 dims, 256 centroids each): approximate scores.
    pq = faiss.IndexPQ(dim, 8, 8, faiss.METRIC_INNER_PRODUCT)
    pq.train(vectors)
    approximate = faiss.IndexIDMap2(pq)
    approximate.add_with_ids(vectors, ids)
    engine.store.vectors["image"] = VectorIndex(dim, approximate)
    assert not engine.store.vectors["image"].exact

    raw_differs = 0
    for query in _unit(rng.normal(size=(20, dim))):
        hits = engine.search_vectors({"image": query}, k=K)
        brute = np.argsort(-(vectors @ query))[:K]
        assert [h.uri for h in hits] == [f"/v/{i}.jpg" for i in brute]
        assert [h.similarity for h in hits] == pytest.approx((vectors @ query)[brute].tolist(), abs=1e-5)
        _, raw = approximate.search(query[None, :], K)
        raw_differs += list(raw[0]) != list(ids[brute])
    assert raw_differs > 10, "the quantised order alone is wrong: the rescoring is what fixes it"


@pytest.fixture(scope="module")
def weak_first_stage(tmp_path_factory):
    """Held-out shapes indexed with a random-weights model: a first stage that ranks nearly at random."""
    settings, engine = index_heldout_shapes(tmp_path_factory.mktemp("rerank"), TINY, per_class=PER_CLASS)
    yield settings, engine
    engine.close()


def _recall_at_5(engine: Engine) -> dict[tuple[str, str], float]:
    """Per class: the share of its held-out images found in the top 5."""
    return {
        cls: sum(class_of(h.uri) == cls for h in engine.search_text(caption(*cls), k=5)) / PER_CLASS
        for cls in classes()
    }


def test_a_second_model_reranks_without_ever_lowering_recall(weak_first_stage, shapes_model: Path):
    settings, first = weak_first_stage
    before = _recall_at_5(first)
    reranking = settings.model_copy(
        update={
            "search": settings.search.model_copy(
                update={"rerank_model": str(shapes_model), "rerank_depth": 90}
            )
        }
    )
    engine = Engine.open(reranking)
    assert isinstance(engine.reranker, ClipReranker)
    after = _recall_at_5(engine)
    engine.close()
    assert all(after[c] >= before[c] for c in before), "reranking never lowers recall@5"
    assert sum(after.values()) / len(after) >= 0.9 > sum(before.values()) / len(before)


def test_rerank_reorders_scored_hits_in_their_places_and_leaves_the_rest():
    hits = ["a", "said-1", "b", "c", "said-2"]
    scores = np.array([0.1, np.nan, 0.9, 0.5, np.nan])
    assert rerank(hits, scores) == ["b", "said-1", "c", "a", "said-2"]
