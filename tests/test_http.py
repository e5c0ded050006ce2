"""The HTTP API under a real uvicorn server on a loopback port, over a small index of generated images.

A tiny random-weights open_clip model keeps this fast on CPU: random weights still map identical pixels
to identical vectors, which is all the image-query assertions rely on.
"""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from api.app import create_app
from api.limits import MULTIPART_SLACK
from indexer import index_folder
from search import Engine, Settings
from tests.conftest import TINY, assert_same_ranking, serve

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
    """An app whose lifespan opens the index itself (model from the manifest), with a small upload cap."""
    settings = Settings(index_dir=index.settings.index_dir, api={"max_upload_bytes": SMALL_UPLOAD})
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


# --- search ---------------------------------------------------------------------------------------


def test_text_search(client, index):
    r = client.get("/search", params={"q": "red", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "red" and body["k"] == 5 and body["took_ms"] >= 0
    hits = body["hits"]
    assert len(hits) == 5
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert len({h["item_id"] for h in hits}) == 5
    known = {str(p) for p in index.files.values()} | {str(index.vanished)}
    for h in hits:
        assert h["uri"] in known and h["kind"] == "image"
        assert h["thumbnail_url"] == f"/items/{h['item_id']}/thumbnail"
        assert h["item_url"] == f"/items/{h['item_id']}"
        item = client.get(h["item_url"])
        assert item.status_code == 200 and item.json()["uri"] == h["uri"]


def test_text_search_default_k_and_more_k_than_items(client, index):
    r = client.get("/search", params={"q": "a photo"})
    assert r.status_code == 200 and r.json()["k"] == 10 and len(r.json()["hits"]) == 10
    r = client.get("/search", params={"q": "a photo", "k": 200})
    assert r.status_code == 200 and len(r.json()["hits"]) == index.indexed


def test_filters(client, index):
    prefix = str(index.root / "sub") + "/"
    r = client.get("/search", params={"q": "noise", "k": 50, "path_prefix": prefix})
    assert r.status_code == 200
    uris = [h["uri"] for h in r.json()["hits"]]
    assert len(uris) == 4 and all(u.startswith(prefix) for u in uris)
    r = client.get("/search", params={"q": "noise", "kind": "video"})
    assert r.status_code == 200 and r.json()["hits"] == []
    r = client.get("/search", params={"q": "noise", "k": 50, "min_score": 0.5})
    assert r.status_code == 200 and all(h["score"] >= 0.5 for h in r.json()["hits"])


@pytest.mark.parametrize("name", ["noise1", "red", "checks", "turned"])
def test_image_search_finds_the_same_file(client, index, name):
    path = index.files[name]
    r = client.post(
        "/search/image", params={"k": 3}, files={"file": (path.name, path.read_bytes(), "image/x")}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] is None and len(body["hits"]) == 3
    top = body["hits"][0]
    assert top["uri"] == str(path)
    assert top["score"] == pytest.approx(1.0, abs=1e-3)
    assert body["image"]["bytes"] == path.stat().st_size and body["image"]["filename"] == path.name
    if name == "turned":
        assert (body["image"]["width"], body["image"]["height"]) == (60, 120)
        assert (top["width"], top["height"]) == (60, 120)


def test_image_search_with_filters(client, index):
    path = index.files["noise2"]
    data = path.read_bytes()
    r = client.post("/search/image", params={"k": 5, "min_score": 0.999}, files={"file": ("x.png", data)})
    assert r.status_code == 200 and [h["uri"] for h in r.json()["hits"]] == [str(path)]
    r = client.post(
        "/search/image", params={"path_prefix": str(index.root / "nowhere")}, files={"file": data}
    )
    assert r.status_code == 200 and r.json()["hits"] == []


def test_concurrent_requests(client, index):
    """Blocking work runs in the threadpool: parallel queries all answer, and answer alike."""
    data = index.files["stripes"].read_bytes()

    def text(_):
        return client.get("/search", params={"q": "stripes", "k": 4}).json()["hits"]

    def image(_):
        return client.post("/search/image", params={"k": 4}, files={"file": ("s.jpg", data)}).json()["hits"]

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(text, range(8)))
        images = list(pool.map(image, range(8)))
    ranked = [[(h["item_id"], h["score"]) for h in t] for t in texts]
    for r in ranked:  # the same ranking from every thread, up to near-ties (thread splits differ under load)
        assert_same_ranking(r, ranked[0])
    assert all(i[0]["uri"] == str(index.files["stripes"]) for i in images)


@pytest.mark.parametrize(
    "params, status",
    [
        ({"q": ""}, 400),
        ({"q": "   "}, 400),
        ({}, 422),
        ({"q": "x" * 5000}, 422),
        ({"q": "red", "k": 0}, 422),
        ({"q": "red", "k": -3}, 422),
        ({"q": "red", "k": 10000}, 422),
        ({"q": "red", "k": 201}, 422),
        ({"q": "red", "k": "abc"}, 422),
        ({"q": "red", "k": "1.5"}, 422),
        ({"q": "red", "kind": "bogus"}, 422),
        ({"q": "red", "min_score": "nan"}, 422),
        ({"q": "red", "min_score": "high"}, 422),
        ({"q": "red", "min_score": 2}, 422),
        ({"q": "red", "path_prefix": ""}, 422),
    ],
)
def test_text_search_bad_input(client, params, status):
    body = assert_error(client.get("/search", params=params), status)
    if status == 422:
        assert body["type"] == "ValidationError" and body["detail"]


def test_k_over_max_k_names_the_limit(client):
    body = assert_error(client.get("/search", params={"q": "red", "k": 10000}), 422)
    assert "200" in body["error"] and body["detail"][0]["loc"] == ["query", "k"]


def _truncated_jpeg(index: Index) -> bytes:
    data = index.files["noise1"].read_bytes()
    assert data[:2] == b"\xff\xd8"
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "files, status",
    [
        ({"file": ("notes.txt", b"hello, this is plain text\n" * 20, "text/plain")}, 400),
        ({"file": ("empty.jpg", b"", "image/jpeg")}, 400),
        ({"file": ("bomb.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")}, 400),
        ({"other": ("x.png", b"\x89PNG", "image/png")}, 422),
        (None, 422),
    ],
)
def test_image_search_bad_upload(client, files, status):
    assert_error(client.post("/search/image", files=files), status)


def test_image_search_truncated_jpeg(client, index):
    body = assert_error(client.post("/search/image", files={"file": ("t.jpg", _truncated_jpeg(index))}), 400)
    assert body["type"] == "MediaError"


def test_image_search_not_multipart(client):
    assert_error(client.post("/search/image", json={"file": "abc"}), 422)
    assert_error(client.post("/search/image", data={"file": "not a file"}), 422)


def test_image_search_bad_params(client, index):
    data = index.files["red"].read_bytes()
    assert_error(client.post("/search/image", params={"k": 0}, files={"file": data}), 422)
    assert_error(client.post("/search/image", params={"kind": "bogus"}, files={"file": data}), 422)


def test_image_search_pixel_bomb(index):
    settings = index.settings.model_copy(
        update={"api": index.settings.api.model_copy(update={"max_upload_pixels": 1000})}
    )
    with serve(create_app(settings, index.engine)) as url, httpx.Client(base_url=url) as c:
        data = index.files["red"].read_bytes()
        body = assert_error(c.post("/search/image", files={"file": data}), 413)
        assert body["type"] == "MediaTooLargeError"


def test_upload_over_the_limit(small_client, index):
    data = index.files["noise0"].read_bytes()
    assert SMALL_UPLOAD < len(data) < MULTIPART_SLACK  # refused by the endpoint's capped read
    body = assert_error(small_client.post("/search/image", files={"file": ("n.jpg", data)}), 413)
    assert body["type"] == "MediaTooLargeError" and str(SMALL_UPLOAD) in body["error"]
    # Refused from the Content-Length, before the body is parsed.
    big = b"\0" * (SMALL_UPLOAD + MULTIPART_SLACK + 1)
    body = assert_error(small_client.post("/search/image", files={"file": ("big.png", big)}), 413)
    assert body["type"] == "MediaTooLargeError" and str(SMALL_UPLOAD) in body["error"]


def test_upload_over_the_limit_chunked(small_client):
    """No Content-Length (chunked): the streamed body is cut off at the limit."""

    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(20):
            yield b"\0" * 8192

    headers = {"content-type": "multipart/form-data; boundary=x"}
    r = small_client.post("/search/image", content=chunks(), headers=headers)
    assert "content-length" not in r.request.headers
    assert str(SMALL_UPLOAD) in assert_error(r, 413)["error"]


def test_small_app_under_the_limit(small_client, index):
    path = index.files["red"]  # a solid JPEG: well under the small limit
    assert path.stat().st_size < SMALL_UPLOAD
    r = small_client.post("/search/image", params={"k": 1}, files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 200 and r.json()["hits"][0]["uri"] == str(path)


# --- items and thumbnails -------------------------------------------------------------------------


def test_item(client, index):
    path = index.files["checks"]
    item_id = item_id_of(client, path)
    r = client.get(f"/items/{item_id}")
    assert r.status_code == 200
    item = r.json()
    assert item["id"] == item_id and item["uri"] == str(path) and item["status"] == "indexed"
    assert item["kind"] == "image" and (item["width"], item["height"]) == (128, 96)
    assert item["size"] == path.stat().st_size and len(item["content_hash"]) == 64
    assert (
        item["error"] is None
        and item["indexed_at"]
        and item["thumbnail_url"] == f"/items/{item_id}/thumbnail"
    )


def _failed_item_id(index: Index) -> int:
    return next(i for i in range(1, 100) if index.engine.item(i).status == "failed")


def test_failed_item(client, index):
    item = client.get(f"/items/{_failed_item_id(index)}").json()
    assert item["status"] == "failed" and item["uri"] == str(index.broken)
    assert item["error"] and item["thumbnail_url"] is None


@pytest.mark.parametrize("size", [16, 48, 100])
def test_thumbnail(client, index, size):
    item_id = item_id_of(client, index.files["hgrad"])
    r = client.get(f"/items/{item_id}/thumbnail", params={"size": size})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert "max-age" in r.headers["cache-control"]
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.format == "JPEG"
        assert max(im.size) == size and im.size[0] > im.size[1]  # 128x96 scaled down, shape kept


def test_thumbnail_default_size_never_enlarges(client, index):
    r = client.get(f"/items/{item_id_of(client, index.files['blue'])}/thumbnail")
    assert r.status_code == 200
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size == (128, 96)  # smaller than thumbnail_px: kept


def test_thumbnail_exif_orientation(client, index):
    r = client.get(f"/items/{item_id_of(client, index.files['turned'])}/thumbnail", params={"size": 40})
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size == (20, 40)  # stored 120x60, shown turned


def test_thumbnail_etag(client, index):
    url = f"/items/{item_id_of(client, index.files['green'])}/thumbnail"
    first = client.get(url, params={"size": 32})
    etag = first.headers["etag"]
    again = client.get(url, params={"size": 32}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.get(url, params={"size": 32}).content == first.content  # served from the cache
    assert client.get(url, params={"size": 33}).headers["etag"] != etag


@pytest.mark.parametrize("size", [0, 15, 5000, "big"])
def test_thumbnail_bad_size(client, index, size):
    item_id = item_id_of(client, index.files["red"])
    assert_error(client.get(f"/items/{item_id}/thumbnail", params={"size": size}), 422)


def test_unknown_item(client):
    body = assert_error(client.get("/items/999999"), 404)
    assert body["type"] == "NotFoundError"
    assert assert_error(client.get("/items/999999/thumbnail"), 404)["type"] == "NotFoundError"


def test_thumbnail_of_failed_item(client, index):
    assert_error(client.get(f"/items/{_failed_item_id(index)}/thumbnail"), 404)


def test_thumbnail_of_vanished_file(client, index):
    item_id = next(i for i in range(1, 100) if index.engine.item(i).uri == str(index.vanished))
    assert client.get(f"/items/{item_id}").status_code == 200  # still in the catalog
    body = assert_error(client.get(f"/items/{item_id}/thumbnail"), 404)
    assert "no longer on disk" in body["error"]


@pytest.mark.parametrize(
    "target",
    [
        "/items/..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/items/..%2F..%2Fetc%2Fpasswd",
        "/items/1/../../etc/passwd",
        "/items/1/..%2F..%2F..%2Fetc%2Fpasswd",
        "/items/%2e%2e/thumbnail",
        "/items/%2Fetc%2Fpasswd/thumbnail",
        "/items/1%2F..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/items/abc",
        "/items/1.5/thumbnail",
        "/items/0",
        "/items/-1/thumbnail",
        "/items/99999999999999999999999999/thumbnail",
        "/items/9223372036854775808",
    ],
)
def test_paths_that_are_not_item_ids(client, target):
    status, body, content_type = raw_get(client, target)
    assert status in (404, 422), (status, body)
    assert content_type.startswith("application/json")
    assert json.loads(body)["error"]
    assert b"root:" not in body


# --- health, docs, errors -------------------------------------------------------------------------


def test_health_and_readiness(client, index):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert (body["items"], body["failed"], body["vectors"]) == (index.indexed, 1, index.indexed)
    assert TINY["name"] in body["model"]


def test_not_ready_until_the_index_is_open(index):
    app = create_app(index.settings, index.engine)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        app.state.engine = None  # as before the lifespan has opened the index, or after it closed it
        assert c.get("/health").status_code == 200
        r = c.get("/ready")
        assert r.status_code == 503 and "not open" in r.json()["error"]


def test_openapi_and_docs(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "mmsearch"
    for path in (
        "/search",
        "/search/image",
        "/items/{item_id}",
        "/items/{item_id}/thumbnail",
        "/health",
        "/ready",
    ):
        assert path in spec["paths"]
    assert "HitOut" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    assert "<title>mmsearch</title>" in root.text and client.get("/web/app.js").status_code == 200


def test_unknown_route_and_method(client):
    assert assert_error(client.get("/nope"), 404)["type"] == "HTTPException"
    assert_error(client.delete("/search", params={"q": "x"}), 405)


class _BrokenEngine:
    encoder = SimpleNamespace()  # the app hooks its metrics onto the encoder

    def search_text(self, *args, **kwargs):
        raise RuntimeError("secret internals")


def test_unexpected_error_is_json_500(index):
    with serve(create_app(index.settings, _BrokenEngine())) as url, httpx.Client(base_url=url) as c:
        r = c.get("/search", params={"q": "x"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error", "type": "InternalServerError"}
