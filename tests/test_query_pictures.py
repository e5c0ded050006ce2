"""One decode path for query pictures: a recompressed, half-size copy of an indexed real photo, used as
the query, reaches the engine as the same pixels through the command line, the HTTP API and the library,
and finds its original first by every route.

Real files find this: the indexer decodes a JPEG at a reduced scale (DCT scaling), and a query decoded at
full size and resized afterwards is another picture. Through the old command line a copy of a real photo
scored 0.928 against its own stored vector, through HTTP 1.000 (ViT-B-32), and was not in its own top 5.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, Picture, Settings
from mmsearch.api.app import create_app
from mmsearch.indexer import index_folder
from tests.conftest import serve

PHOTOS = Path(__file__).parent / "fixtures" / "photos"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, shapes_model: Path):
    """The real photos indexed (the small shapes model: a model folder, as the command line reopens it),
    and a half-size copy of one, recompressed."""
    root = tmp_path_factory.mktemp("query-pictures")
    shutil.copytree(PHOTOS, root / "photos", ignore=shutil.ignore_patterns("*.md"))
    settings = Settings(index_dir=root / "index", model={"name": str(shapes_model)})
    engine = Engine.open(settings, create=True)
    assert index_folder(root / "photos", engine.encoder, engine.store, settings.indexer).indexed == 4
    engine.close()
    copy = root / "cat-copy.jpg"
    with Image.open(PHOTOS / "cat.jpg") as im:
        im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS).save(copy, "JPEG", quality=75)
    return settings, copy


def test_a_resized_copy_finds_its_original_first_by_every_route(indexed):
    settings, copy = indexed
    data = copy.read_bytes()
    engine = Engine.open(settings)
    try:
        library = [(h.uri, h.score) for h in engine.search_image(engine.picture(Picture(data)).image, k=4)]
        with serve(create_app(settings, engine=engine)) as url:
            reply = httpx.post(
                f"{url}/search/image", params={"k": 4, "all": True}, files={"file": ("c.jpg", data)}
            )
            reply.raise_for_status()
            http = [(h["uri"], h["score"]) for h in reply.json()["hits"]]
    finally:
        engine.close()
    args = [
        "search",
        "--image",
        str(copy),
        "-k",
        "4",
        "--all",
        "--json",
        "--index-dir",
        str(settings.index_dir),
    ]
    cli = subprocess.run(
        [sys.executable, "-m", "mmsearch.api.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    by_cli = [(h["uri"], h["score"]) for h in json.loads(cli.stdout)["hits"]]
    for route in (library, http, by_cli):
        assert Path(route[0][0]).name == "cat.jpg", route
    # The same pixels reach the encoder by every route, so the query vector and every score agree.
    np.testing.assert_allclose([s for _, s in by_cli], [s for _, s in library], atol=1e-5)
    np.testing.assert_allclose([s for _, s in http], [s for _, s in library], atol=1e-5)


def test_the_query_picture_is_decoded_as_the_indexer_decodes(indexed):
    settings, _ = indexed
    engine = Engine.open(settings)
    try:
        original = (PHOTOS / "cat.jpg").read_bytes()
        query = engine.encoder.encode_images([engine.picture(Picture(original)).image])[0]
        hit = engine.search_image(engine.picture(Picture(original)).image, k=1)[0]
        stored = engine.store.vectors_of("image", np.array([hit.segment_id], np.int64))[0]
    finally:
        engine.close()
    assert Path(hit.uri).name == "cat.jpg"
    assert float(query @ stored) > 0.99999, "an indexed file used as the query finds itself at 1.0"
