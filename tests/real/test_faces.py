"""Faces blurred in served thumbnails (api.blur_faces, api/faces.py), on real photos whose faces were boxed
by eye: a portrait's, a footballer's a few dozen pixels wide in a stadium, none on a sign; and a video
keyframe. Read back from the bytes served over HTTP, against the same server with the setting off."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.api.app import create_app
from mmsearch.indexer import index_folder
from mmsearch.synth.media import Shot, write_video
from tests.conftest import serve

pytestmark = pytest.mark.skipif(importlib.util.find_spec("nudenet") is None, reason="needs mmsearch[faces]")
SIZE = 512
FACES = {  # (x0, y0, x1, y1) in the photo's own pixels, drawn by eye around forehead to chin
    "lena.png": (220, 215, 370, 390),
    "messi5.jpg": (217, 90, 257, 132),
}
NO_FACE = "penguins.png"
VIDEO = "portrait.mp4"


@pytest.fixture(scope="module")
def collection(corpus, shapes_model, tmp_path_factory) -> Iterator[tuple[Settings, Engine, dict[str, int]]]:
    """The photos and the video indexed: (settings, the open engine, {file name: item id})."""
    root = tmp_path_factory.mktemp("faces")
    folder = root / "photos"
    folder.mkdir()
    for rel in ("photos/mvtb/lena.png", "photos/opencv/messi5.jpg", "photos/mvtb/penguins.png"):
        shutil.copy(corpus / rel, folder)
    portrait = Image.new("RGB", (640, 360))
    portrait.paste(Image.open(corpus / "photos/mvtb/lena.png").convert("RGB").resize((360, 360)), (140, 0))
    write_video(folder / VIDEO, [Shot(portrait, 2.0)])
    settings = Settings(
        index_dir=root / "index",
        model={"name": str(shapes_model), "device": "cpu"},
        speech={"enabled": False},
    )
    engine = Engine.open(settings, create=True)
    try:
        index_folder(folder, engine.encoder, engine.store, settings.indexer, video=settings.video)
        ids = {Path(uri).name: known.id for uri, known in engine.store.catalog.known_files().items()}
        yield settings, engine, ids
    finally:
        engine.close()


def blurring(settings: Settings, blur: bool) -> Settings:
    return settings.model_copy(update={"api": settings.api.model_copy(update={"blur_faces": blur})})


@pytest.fixture(scope="module")
def served(collection) -> dict[bool, dict[str, Image.Image | str]]:
    """{blur_faces: {file name: its thumbnail as served, and name + "/etag": its ETag}}."""
    settings, engine, ids = collection
    out = {}
    for blur in (False, True):
        with serve(create_app(blurring(settings, blur), engine)) as url:
            got = {}
            for name, item_id in ids.items():
                r = httpx.get(f"{url}/items/{item_id}/thumbnail", params={"size": SIZE}, timeout=60)
                assert r.status_code == 200, r.text
                got[name] = Image.open(io.BytesIO(r.content)).convert("L")
                got[name + "/etag"] = r.headers["etag"]
        out[blur] = got
    return out


def detail(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference between neighbouring pixels inside `box`: what a blur takes away."""
    a = np.asarray(image.crop(box), np.float32)
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


def scaled(box, original: tuple[int, int], thumb: tuple[int, int]) -> tuple[int, ...]:
    s = thumb[0] / original[0]
    return tuple(round(v * s) for v in box)


@pytest.mark.parametrize("name", sorted(FACES))
def test_a_face_is_blurred_in_the_served_thumbnail_and_nothing_far_from_it(served, corpus, name):
    plain, blurred = served[False][name], served[True][name]
    original = Image.open(next(corpus.rglob(name))).size
    face = scaled(FACES[name], original, plain.size)
    assert detail(blurred, face) < 0.5 * detail(plain, face), (detail(blurred, face), detail(plain, face))
    x0, y0, x1, y1 = face
    w = x1 - x0
    far = [(0, 0, plain.width, max(0, y0 - w)), (0, min(plain.height, y1 + w), plain.width, plain.height)]
    for box in far:  # a face's width above and below it, the served pixels are the plain thumbnail's
        if box[3] - box[1] >= 16:
            diff = np.abs(np.asarray(plain.crop(box), np.int16) - np.asarray(blurred.crop(box), np.int16))
            assert diff.mean() < 0.5, (box, diff.mean())
    assert served[True][name + "/etag"] != served[False][name + "/etag"]  # no cached face comes back


def test_a_photo_without_a_face_is_served_as_it_was(served):
    plain, blurred = served[False][NO_FACE], served[True][NO_FACE]
    assert np.array_equal(np.asarray(plain), np.asarray(blurred))


def test_a_face_in_a_video_keyframe_is_blurred(served):
    plain, blurred = served[False][VIDEO], served[True][VIDEO]
    s = plain.width / 640  # the portrait is 360 pixels high, from x = 140, in a 640x360 frame
    face = scaled(FACES["lena.png"], (512, 512), (round(360 * s), round(360 * s)))
    face = (face[0] + round(140 * s), face[1], face[2] + round(140 * s), face[3])
    assert detail(blurred, face) < 0.5 * detail(plain, face), (detail(blurred, face), detail(plain, face))


def test_an_agent_sees_the_face_blurred_too(collection, corpus):
    """The MCP server's thumbnails (api/mcp_server.py) follow the same setting."""
    mcp = pytest.importorskip("mcp")
    from mmsearch.api.mcp_server import build

    settings, engine, _ = collection

    async def thumbnails(blur: bool) -> dict[str, Image.Image]:
        async with mcp.Client(build(engine, blurring(settings, blur))) as client:
            result = await client.call_tool("search", {"text": "a portrait", "k": 10, "show_all": True})
        got, name = {}, None
        for part in result.content[1:]:
            if part.type == "text":
                name = Path(json.loads(part.text)["uri"]).name
            else:
                got[name] = Image.open(io.BytesIO(base64.b64decode(part.data))).convert("L")
        return got

    plain, blurred = asyncio.run(thumbnails(False)), asyncio.run(thumbnails(True))
    original = Image.open(corpus / "photos/mvtb/lena.png").size
    face = scaled(FACES["lena.png"], original, plain["lena.png"].size)
    assert detail(blurred["lena.png"], face) < 0.5 * detail(plain["lena.png"], face)
