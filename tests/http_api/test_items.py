"""The HTTP API's items, thumbnails, health, docs and errors (fixtures: conftest.py)."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image

from mmsearch.api.app import create_app
from tests.conftest import TINY, serve
from tests.http_api.conftest import Index, assert_error, item_id_of, raw_get

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
    def observe_encoding(self, observe) -> None:  # the app hooks its metrics on
        pass

    def search(self, *args, **kwargs):
        raise RuntimeError("secret internals")


def test_unexpected_error_is_json_500(index):
    with serve(create_app(index.settings, _BrokenEngine())) as url, httpx.Client(base_url=url) as c:
        r = c.get("/search", params={"q": "x"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error", "type": "InternalServerError"}
