"""Composed queries over held-out shapes with the trained shapes model: a picture plus words, negatives,
more like this, and the same over HTTP.

The model here is the shapes model trained with partial captions too (`shapes_attribute_model` in
tests/conftest.py), so single attribute words like "blue" mean something to it."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from mmsearch import InvalidQueryError
from mmsearch.api.app import create_app
from mmsearch.query.request import Term
from mmsearch.synth.shapes import class_of, render
from tests.conftest import index_heldout_shapes, serve


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, shapes_attribute_model: Path):
    root = tmp_path_factory.mktemp("composed")
    settings, engine = index_heldout_shapes(root, {"name": str(shapes_attribute_model)}, per_class=3)
    yield settings, engine
    engine.close()


RED_CIRCLE = render("red", "circle", np.random.default_rng(5))


def classes_of(hits) -> list[str]:
    return ["-".join(class_of(h.uri)) for h in hits]


def margin(hits, wanted: str) -> float:
    """Score of the last hit of the wanted class among its 3 held-out pictures, less the best score of any
    other class: above zero when all three lead. Recorded for the spread (tests/spread.py): with the
    committed fixture 0.070 for the picture alone and 0.074 with "blue", the same under every CPU setting
    measured; fresh trainings of its recipe gave -0.019 to 0.102 with "blue" (docs/testing.md)."""
    ranked = classes_of(hits)
    ours = [h.score for h, c in zip(hits, ranked, strict=True) if c == wanted]
    others = [h.score for h, c in zip(hits, ranked, strict=True) if c != wanted]
    return ours[2] - others[0] if len(ours) >= 3 else -1.0


def test_a_picture_plus_words_moves_to_what_the_words_say(shapes, record_property):
    _, engine = shapes
    alone = engine.search_image(RED_CIRCLE, k=10)
    both = engine.search_composed([Term(RED_CIRCLE), Term("blue", 1.0)], k=10)
    record_property("composed_picture_margin", margin(alone, "red-circle"))
    record_property("composed_plus_blue_margin", margin(both, "blue-circle"))
    assert classes_of(alone[:3]) == ["red-circle"] * 3
    assert classes_of(both[:3]) == ["blue-circle"] * 3, "the circle kept, the colour changed"


def test_a_negative_term_pushes_its_matches_down(shapes):
    _, engine = shapes

    def red_circle_ranks(terms) -> float:
        ranked = classes_of(engine.search_composed(terms, k=90))
        return float(np.mean([i for i, c in enumerate(ranked) if c == "red-circle"]))

    plain = red_circle_ranks([Term(RED_CIRCLE)])
    pushed = red_circle_ranks([Term(RED_CIRCLE), Term("a red circle", -1.0)])
    assert plain == 1.0 and pushed > 10, "the red circles leave the top"


def test_more_like_this_by_item_id(shapes):
    _, engine = shapes
    seed = engine.search_text("a green star", k=1)[0]
    hits = engine.search_composed([Term(seed.item_id)], k=4)
    assert hits[0].item_id == seed.item_id and set(classes_of(hits[:3])) == {"green-star"}
    with pytest.raises(InvalidQueryError, match="cancel out"):
        engine.compose([Term("a red circle"), Term("a red circle", -1.0)])


def test_composed_search_over_http(shapes):
    settings, engine = shapes
    out = io.BytesIO()
    RED_CIRCLE.save(out, "PNG")
    image = base64.b64encode(out.getvalue()).decode()
    with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = {"terms": [{"image": image}, {"text": "blue", "weight": 1.0}], "k": 2}
        r = client.post("/search", json=body)
        assert r.status_code == 200
        assert ["-".join(class_of(h["uri"])) for h in r.json()["hits"]] == ["blue-circle"] * 2
        bad = client.post("/search", json={"terms": [{"text": "x", "item_id": 3}]})
        assert bad.status_code == 422 and "exactly one" in bad.json()["error"]
        missing = client.post("/search", json={"terms": [{"item_id": 999999}]})
        assert missing.status_code == 404
        broken = client.post("/search", json={"terms": [{"image": "not base64!"}]})
        assert broken.status_code == 400
