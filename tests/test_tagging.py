"""Zero-shot tags for a whole collection (stored, filterable, re-runnable) and /classify over HTTP."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mmsearch import Filters
from mmsearch.api.app import create_app
from mmsearch.learn.classify import ZeroShotClassifier, tag_collection
from mmsearch.synth.shapes import COLOURS, class_of
from tests.conftest import index_heldout_shapes, serve

COLOUR_TEMPLATES = ("{}", "a {}", "the {}")  # shaped like the shapes model's captions (see test_classify)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, shapes_model: Path):
    root = tmp_path_factory.mktemp("tagging")
    settings, engine = index_heldout_shapes(root, {"name": str(shapes_model)}, per_class=2)
    yield settings, engine, root
    engine.close()


def test_bulk_tags_are_stored_filterable_and_replaced_on_a_rerun(shapes):
    _, engine, _ = shapes
    classifier = ZeroShotClassifier(engine.encoder, list(COLOURS), COLOUR_TEMPLATES)
    tagged, given = tag_collection(engine.store.catalog, classifier)
    assert tagged == 60 and sum(given.values()) == 60
    tagged_again, _ = tag_collection(engine.store.catalog, classifier)
    correct = 0
    for uri, known in engine.store.catalog.known_files().items():
        tags = engine.store.catalog.tags(known.id)
        assert len(tags) == 1 and 0 < tags[0][1] <= 1 and tags[0][2] == "zero-shot", "replaced, not added"
        correct += tags[0][0] == class_of(uri)[0]
    assert tagged_again == 60 and correct / 60 >= 0.9
    reds = engine.search_text("a red circle", k=60, filters=Filters(where="tag = red"))
    assert reds and all(engine.store.catalog.tags(h.item_id)[0][0] == "red" for h in reds)
    none = engine.search_text(
        "a red circle", k=60, filters=Filters(where="tag in [red, blue] and tag = green")
    )
    assert none == []


def test_multi_label_tags_follow_the_threshold(shapes):
    _, engine, _ = shapes
    classifier = ZeroShotClassifier(engine.encoder, list(COLOURS), COLOUR_TEMPLATES)
    _, loose = tag_collection(engine.store.catalog, classifier, threshold=-1.0, source="loose")
    _, strict = tag_collection(engine.store.catalog, classifier, threshold=0.99, source="strict")
    assert sum(loose.values()) == 60 * len(COLOURS) and sum(strict.values()) < 60


def test_classify_over_http_by_upload_and_by_item(shapes):
    settings, engine, root = shapes
    picture = next((root / "heldout").glob("blue-star-*.jpg"))
    item_id = engine.store.catalog.known_files()[str(picture)].id
    labels = ",".join(COLOURS)
    form = {"labels": labels, "templates": list(COLOUR_TEMPLATES)}
    with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/classify", data=form, files={"file": ("q.jpg", picture.read_bytes())})
        assert r.status_code == 200 and r.json()["mode"] == "single"
        assert (
            r.json()["labels"][0]["label"] == "blue" and sum(x["score"] for x in r.json()["labels"]) <= 1.0001
        )
        by_item = client.post("/classify", data={**form, "item_id": str(item_id)})
        assert by_item.json()["labels"][0]["label"] == "blue"
        multi = client.post("/classify", data={"labels": labels, "item_id": str(item_id), "threshold": "-1"})
        assert multi.json()["mode"] == "multi" and len(multi.json()["labels"]) == 5, "top 5 of 6"
        for data, files, status in [
            ({"labels": labels}, None, 400),  # neither a file nor an item
            ({"labels": labels, "item_id": str(item_id)}, {"file": ("q.jpg", b"x")}, 400),  # both
            ({"labels": " , ", "item_id": str(item_id)}, None, 400),  # no labels
            ({"labels": labels, "item_id": "999999"}, None, 404),
            ({"labels": labels}, {"file": ("q.jpg", io.BytesIO(b"not an image"))}, 400),
        ]:
            bad = client.post("/classify", data=data, files=files)
            assert bad.status_code == status and "error" in bad.json(), (data, bad.text)


def test_cli_classify_tags_the_collection(shapes):
    settings, _, _ = shapes
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmsearch.api.cli",
            "classify",
            "--labels",
            ",".join(COLOURS),
            "--template",
            "{}",
            "--template",
            "a {}",
            "--template",
            "the {}",
            "--index-dir",
            str(settings.index_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("tagged 60 items:")
