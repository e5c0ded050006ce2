"""Search finds the right images: the trained shapes model, the real indexer, held-out images.

Thresholds from the foundation issue: text -> image recall@5 >= 0.9 over every colour x shape class,
image -> image top-1 of the same class >= 0.9. Queries and indexed images are never seen in training
(another seed), and image queries are not in the index either. The committed fixture scores 1.0 on
both, under every CPU setting measured; fresh trainings of its recipe 0.99 to 1.0 and 0.97 to 1.0
(docs/testing.md).
"""

from pathlib import Path

import pytest

from mmsearch import Engine, Filters, Settings
from mmsearch.encode.images import decode_image
from mmsearch.indexer import index_folder
from mmsearch.synth.shapes import caption, class_of, classes, generate

HELD_OUT_PER_CLASS = 6


@pytest.fixture(scope="module")
def shapes_engine(shapes_model: Path, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    generate(root / "heldout", per_class=HELD_OUT_PER_CLASS, seed=1, fmt="jpg")
    settings = Settings(index_dir=root / "index", model={"name": str(shapes_model)})
    engine = Engine.open(settings, create=True)
    report = index_folder(root / "heldout", engine.encoder, engine.store, settings.indexer)
    assert report.indexed == len(classes()) * HELD_OUT_PER_CLASS and report.failed == 0
    yield engine, root
    engine.close()


def test_text_to_image_recall_at_5(shapes_engine, record_property):
    engine, _ = shapes_engine
    per_class = {}
    for colour, shape in classes():
        hits = engine.search_text(caption(colour, shape), k=5)
        assert len(hits) == 5
        per_class[(colour, shape)] = sum(class_of(h.uri) == (colour, shape) for h in hits) / 5
    recall = sum(per_class.values()) / len(per_class)
    worst = min(per_class, key=per_class.get)
    record_property("text_image_recall_at_5", recall)
    assert recall >= 0.9, f"recall@5 {recall:.3f}; worst {worst}: {per_class[worst]:.1f}"


def test_image_to_image_top1_same_class(shapes_engine, tmp_path: Path, record_property):
    engine, _ = shapes_engine
    queries = generate(tmp_path / "queries", per_class=3, seed=2, fmt="jpg")
    right = 0
    for path, _ in queries:
        image = decode_image(path.read_bytes(), 10**8, min_side=engine.encoder.image_size).image
        top = engine.search_image(image, k=1)[0]
        right += class_of(top.uri) == class_of(path)
    record_property("image_image_top1", right / len(queries))
    assert right / len(queries) >= 0.9, f"image -> image top-1 {right}/{len(queries)}"


def test_filters_and_min_score(shapes_engine):
    engine, root = shapes_engine
    red = [h for h in engine.search_text("a red circle", k=100) if class_of(h.uri)[0] == "red"]
    prefix = str(root / "heldout" / "red-")
    only_red = engine.search_text("a blue square", k=10, filters=Filters(path_prefix=prefix))
    assert len(only_red) == 10 and all(class_of(h.uri)[0] == "red" for h in only_red)
    assert len(red) >= 10
    scores = [h.score for h in engine.search_text("a green star", k=30)]
    assert scores == sorted(scores, reverse=True)
    cut = scores[4]
    kept = engine.search_text("a green star", k=30, filters=Filters(min_score=cut))
    assert all(h.score >= cut for h in kept) and len(kept) == sum(s >= cut for s in scores)
    assert engine.search_text("a green star", k=5, filters=Filters(kind="video")) == []
