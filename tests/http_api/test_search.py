"""The HTTP API's searches: text, picture and composed queries, filters, concurrency, and every bad
request or upload refused with the right status (fixtures: conftest.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mmsearch import Engine
from mmsearch.api.app import create_app
from mmsearch.api.limits import MULTIPART_SLACK
from mmsearch.config import SearchSettings
from tests.conftest import assert_same_ranking, serve
from tests.http_api.conftest import SMALL_UPLOAD, Index, assert_error

# --- search ---------------------------------------------------------------------------------------


def test_text_search(client, index):
    r = client.get("/search", params={"q": "red", "k": 5, "all": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "red" and body["k"] == 5 and body["took_ms"] >= 0
    hits = body["hits"]
    assert len(hits) == 5 and body["weaker"] == sum(h["weak"] for h in hits)
    default = client.get("/search", params={"q": "red", "k": 5}).json()  # the good matches, else the best
    good = [h["item_id"] for h in hits if not h["weak"]]
    assert [h["item_id"] for h in default["hits"]] == (good or [hits[0]["item_id"]])
    assert default["weaker"] == body["weaker"] and all(h["weak"] != bool(good) for h in default["hits"])
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
    r = client.get("/search", params={"q": "a photo", "all": True})
    assert r.status_code == 200 and r.json()["k"] == 10 and len(r.json()["hits"]) == 10
    r = client.get("/search", params={"q": "a photo", "k": 200, "all": True})
    assert r.status_code == 200 and len(r.json()["hits"]) == index.indexed


def test_filters(client, index):
    prefix = str(index.root / "sub") + "/"
    r = client.get("/search", params={"q": "noise", "k": 50, "path_prefix": prefix, "all": True})
    assert r.status_code == 200
    uris = [h["uri"] for h in r.json()["hits"]]
    assert len(uris) == 4 and all(u.startswith(prefix) for u in uris)
    r = client.get("/search", params={"q": "noise", "kind": "video"})
    assert r.status_code == 200 and r.json()["hits"] == []
    r = client.get("/search", params={"q": "noise", "k": 50, "min_score": 0.5, "all": True})
    assert r.status_code == 200 and all(h["score"] >= 0.5 for h in r.json()["hits"])


@pytest.mark.parametrize("name", ["noise1", "red", "checks", "turned"])
def test_image_search_finds_the_same_file(client, index, name):
    path = index.files[name]
    r = client.post(
        "/search/image",
        params={"k": 3, "all": True},
        files={"file": (path.name, path.read_bytes(), "image/x")},
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
        ({"q": "red", "k": 0}, 400),
        ({"q": "red", "k": -3}, 400),
        ({"q": "red", "k": 10000}, 400),
        ({"q": "red", "k": 1001}, 400),
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
    body = assert_error(client.get("/search", params={"q": "red", "k": 10000}), 400)
    assert body["error"] == "k must be between 1 and 1000, not 10000" and body["type"] == "InvalidQueryError"


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
    assert_error(client.post("/search/image", params={"k": 0}, files={"file": data}), 400)
    assert_error(client.post("/search/image", params={"kind": "bogus"}, files={"file": data}), 422)


def test_image_search_pixel_bomb(index):
    engine = Engine(index.engine.encoder, index.engine.store, SearchSettings(max_picture_pixels=1000))
    with serve(create_app(index.settings, engine)) as url, httpx.Client(base_url=url) as c:
        data = index.files["red"].read_bytes()
        body = assert_error(c.post("/search/image", files={"file": data}), 413)
        assert body["type"] == "MediaTooLargeError"


def test_upload_over_the_limit(small_client, index):
    data = index.files["noise0"].read_bytes()
    assert SMALL_UPLOAD < len(data) < MULTIPART_SLACK  # refused by the endpoint's capped read
    body = assert_error(small_client.post("/search/image", files={"file": ("n.jpg", data)}), 413)
    assert body["type"] == "MediaTooLargeError" and "4.1 kB" in body["error"]
    # Refused from the Content-Length, before the body is parsed.
    big = b"\0" * (SMALL_UPLOAD + MULTIPART_SLACK + 1)
    body = assert_error(small_client.post("/search/image", files={"file": ("big.png", big)}), 413)
    assert body["type"] == "MediaTooLargeError" and "4.1 kB" in body["error"]


def test_upload_over_the_limit_chunked(small_client):
    """No Content-Length (chunked): the streamed body is cut off at the limit."""

    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(20):
            yield b"\0" * 8192

    headers = {"content-type": "multipart/form-data; boundary=x"}
    r = small_client.post("/search/image", content=chunks(), headers=headers)
    assert "content-length" not in r.request.headers
    assert "over the upload limit of 4.1 kB" in assert_error(r, 413)["error"]


def test_small_app_under_the_limit(small_client, index):
    path = index.files["red"]  # a solid JPEG: well under the small limit
    assert path.stat().st_size < SMALL_UPLOAD
    r = small_client.post("/search/image", params={"k": 1}, files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 200 and r.json()["hits"][0]["uri"] == str(path)
