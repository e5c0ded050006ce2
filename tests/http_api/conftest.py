"""The HTTP API under a real uvicorn server on a loopback port, over a small index of generated images:
the index and the clients every HTTP test shares (built once per session), and their helpers.

A tiny random-weights open_clip model keeps this fast on CPU: random weights still map identical pixels
to identical vectors, which is all the image-query assertions rely on.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.api.app import create_app
from mmsearch.indexer import index_folder
from tests.conftest import TINY, serve

SMALL_UPLOAD = 4096


@dataclass
class Index:
    settings: Settings
    engine: Engine
    root: Path
    files: dict[str, Path]  # name -> indexed image file
    broken: Path  # in the catalog with status "failed"
    vanished: Path  # indexed, then deleted from disk
    indexed: int


def _make_images(root: Path) -> dict[str, Path]:
    """Distinct images: solid colours, gradients, stripes, checks and noise; JPEG and PNG; one folder down
    for some; one JPEG that EXIF says to turn by 90 degrees."""
    rng = np.random.default_rng(7)
    (root / "sub").mkdir(parents=True)
    arrays: dict[str, np.ndarray] = {}
    for name, rgb in {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 210)}.items():
        arrays[name] = np.broadcast_to(np.array(rgb, np.uint8), (96, 128, 3)).copy()
    x = np.linspace(0, 255, 128, dtype=np.float32)
    arrays["hgrad"] = np.stack([np.tile(x, (96, 1))] * 3, -1).astype(np.uint8)
    arrays["vgrad"] = np.stack(
        [np.tile(x[:96, None], (1, 128)), np.zeros((96, 128)), np.full((96, 128), 90)], -1
    )
    yy, xx = np.mgrid[:96, :128]
    arrays["checks"] = np.where(((yy // 16 + xx // 16) % 2)[..., None] == 0, 255, 0).repeat(3, -1)
    arrays["stripes"] = np.stack([(xx // 8 % 2) * 255, (yy // 8 % 2) * 200, np.full_like(xx, 60)], -1)
    for i in range(4):
        arrays[f"noise{i}"] = rng.integers(0, 256, (96, 128, 3))
    files = {}
    for i, (name, arr) in enumerate(arrays.items()):
        ext = ".png" if i % 2 else ".jpg"
        folder = root / "sub" if name.startswith("noise") else root
        path = folder / f"{name}{ext}"
        Image.fromarray(np.asarray(arr, np.uint8), "RGB").save(path, quality=92)
        files[name] = path
    turned = Image.fromarray(rng.integers(0, 256, (60, 120, 3)).astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to display
    files["turned"] = root / "turned.jpg"
    turned.save(files["turned"], exif=exif, quality=92)
    return files


@pytest.fixture(scope="session")
def index(tmp_path_factory) -> Iterator[Index]:
    tmp = tmp_path_factory.mktemp("http")
    root = tmp / "images"
    files = _make_images(root)
    broken = root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG at all" * 10)
    vanished = root / "vanished.png"
    Image.new("RGB", (40, 30), (250, 250, 0)).save(vanished)

    settings = Settings(index_dir=tmp / "idx", model=TINY)
    engine = Engine.open(settings, create=True)
    report = index_folder(root, engine.encoder, engine.store, settings.indexer)
    assert (report.indexed, report.failed) == (len(files) + 1, 1), report.errors
    vanished.unlink()
    yield Index(settings, engine, root, files, broken, vanished, report.indexed)
    engine.close()


@pytest.fixture(scope="session")
def client(index) -> Iterator[httpx.Client]:
    with serve(create_app(index.settings, index.engine)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def small_client(index) -> Iterator[httpx.Client]:
    """An app whose lifespan opens the index itself (model from the manifest), with a small upload cap and
    a query picture limit as small."""
    settings = Settings(
        index_dir=index.settings.index_dir,
        api={"max_upload_bytes": SMALL_UPLOAD},
        search={"max_picture_bytes": SMALL_UPLOAD},
    )
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def item_id_of(client: httpx.Client, path: Path) -> int:
    r = client.post("/search/image", params={"k": 1}, files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 200, r.text
    hit = r.json()["hits"][0]
    assert hit["uri"] == str(path)
    return hit["item_id"]


def assert_error(r: httpx.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["type"], str)
    return body


def raw_get(client: httpx.Client, target: str) -> tuple[int, bytes, str]:
    """GET with the request target sent exactly as given (httpx would normalise dot segments)."""
    conn = http.client.HTTPConnection(client.base_url.host, client.base_url.port, timeout=10)
    try:
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, r.read(), r.getheader("content-type", "")
    finally:
        conn.close()
