"""The API against unauthenticated, greedy, slow and hostile callers, under a real uvicorn server; index runs
over HTTP while searches go on; Prometheus metrics."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mmsearch import Engine, Settings
from mmsearch.api.access import RateLimiter, check_exposure
from mmsearch.api.app import create_app
from mmsearch.api.bench.serve import bench_serve
from mmsearch.api.limits import TimeoutMiddleware
from mmsearch.config import ApiSettings
from mmsearch.errors import ConfigError
from mmsearch.indexer import index_folder
from tests.conftest import TINY, serve, write_images

READ, ADMIN = "read-key-0123456789", "admin-key-0123456789"
FAST_S = 3.0  # every hostile request is answered within this


@dataclass
class Setup:
    settings: Settings
    engine: Engine
    incoming: Path  # an index root with files not indexed yet


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("hardening")
    write_images(tmp / "images", 6)
    write_images(tmp / "incoming", 5, seed=1)
    settings = Settings(index_dir=tmp / "idx", model=TINY)
    engine = Engine.open(settings, create=True)
    index_folder(tmp / "images", engine.encoder, engine.store, settings.indexer)
    yield Setup(settings, engine, tmp / "incoming")
    engine.close()


def app_with(setup: Setup, **api):
    settings = setup.settings.model_copy(update={"api": setup.settings.api.model_copy(update=api)})
    return create_app(settings, setup.engine)


@pytest.fixture(scope="module")
def keyed(setup) -> Iterator[tuple[httpx.Client, object]]:
    app = app_with(setup, read_keys=[READ], admin_keys=[ADMIN], index_roots=[setup.incoming])
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c, app


def assert_json_error(r: httpx.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] and body["type"]
    return body


def api_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route in the OpenAPI schema, path parameters filled with 1."""
    paths = app.openapi()["paths"]
    return [(m.upper(), re.sub(r"\{[^}]+\}", "1", p)) for p, ops in paths.items() for m in ops]


# --- keys -----------------------------------------------------------------------------------------


def test_every_route_but_health_needs_a_key(keyed):
    client, app = keyed
    routes = api_routes(app)
    assert len(routes) >= 15 and ("GET", "/metrics") in routes and ("POST", "/admin/index") in routes
    for method, path in routes:
        r = client.request(method, path)
        if path == "/health":
            assert r.status_code == 200
            continue
        body = assert_json_error(r, 401)
        assert body["type"] == "AuthenticationError" and r.headers["www-authenticate"].startswith("Bearer")
    for path in ("/docs", "/openapi.json"):
        assert client.get(path).status_code == 401
    # The page itself carries no data: it loads, and asks for a key when the API says 401.
    assert client.get("/").status_code == 200 and client.get("/web/app.js").status_code == 200


def test_a_wrong_key_is_refused(keyed):
    client, _ = keyed
    for headers in ({"Authorization": "Bearer nope"}, {"X-API-Key": READ + "x"}, {"Authorization": READ}):
        assert assert_json_error(client.get("/search", params={"q": "red"}, headers=headers), 401)


def test_a_read_key_sees_paths_under_the_indexed_folder_and_an_admin_sees_them_whole(keyed, setup):
    client, _ = keyed
    read, admin = {"X-API-Key": READ}, {"X-API-Key": ADMIN}
    params = {"q": "red", "k": 3, "all": True}
    by_reader = {
        h["item_id"]: h["uri"] for h in client.get("/search", params=params, headers=read).json()["hits"]
    }
    by_admin = {
        h["item_id"]: h["uri"] for h in client.get("/search", params=params, headers=admin).json()["hits"]
    }
    assert by_reader.keys() == by_admin.keys() and len(by_reader) == 3
    for item_id, name in by_reader.items():
        whole = by_admin[item_id]
        assert not name.startswith("/") and Path(whole).is_absolute() and whole.endswith("/" + name)
        assert Path(whole).is_file()
        assert client.get(f"/items/{item_id}", headers=read).json()["uri"] == name
        assert client.get(f"/items/{item_id}", headers=admin).json()["uri"] == whole
    start = name[: len(name) // 2]  # a relative prefix is under the indexed folder, as readers see names
    under = client.get("/search", params={**params, "path_prefix": start}, headers=read).json()["hits"]
    assert under and all(h["uri"].startswith(start) for h in under)


def test_a_read_key_searches_but_cannot_index(keyed):
    client, app = keyed
    for headers in (
        {"Authorization": f"Bearer {READ}"},
        {"X-API-Key": READ},
        {"Cookie": f"mmsearch_key={READ}"},
    ):
        r = client.get("/search", params={"q": "red", "k": 2, "all": True}, headers=headers)
        assert r.status_code == 200 and len(r.json()["hits"]) == 2
    read = {"Authorization": f"Bearer {READ}"}
    for method, path in api_routes(app):
        r = client.request(method, path, headers=read)
        if path.startswith("/admin"):
            assert assert_json_error(r, 403)["type"] == "PermissionError"
        else:
            assert r.status_code not in (401, 403), (method, path, r.status_code)
    r = client.get("/admin/index", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and r.json()["state"] in ("idle", "done")


def test_no_keys_only_on_loopback(setup):
    check_exposure(ApiSettings(host="127.0.0.1"))
    check_exposure(ApiSettings(host="::1"))
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        with pytest.raises(ConfigError, match="without API keys"):
            check_exposure(ApiSettings(host=host))
        check_exposure(ApiSettings(host=host, read_keys=[READ]))
    with pytest.raises(ConfigError):
        app_with(setup, host="0.0.0.0")


# --- rate limit, timeouts, CORS -----------------------------------------------------------------------


def test_rate_limit_per_client(setup):
    app = app_with(setup, rate_per_s=0.5, rate_burst=3, read_keys=[READ, READ + "2"])
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        one, two = {"X-API-Key": READ}, {"X-API-Key": READ + "2"}
        codes = [c.get("/search", params={"q": "red"}, headers=one).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/search", params={"q": "red"}, headers=one)
        assert assert_json_error(r, 429)["type"] == "RateLimitError" and int(r.headers["retry-after"]) >= 1
        assert c.get("/search", params={"q": "red"}, headers=two).status_code == 200  # its own bucket
        assert c.get("/health").status_code == 200  # never limited


def test_rate_limiter_refills():
    limiter = RateLimiter(per_s=2, burst=2)
    assert [limiter.wait_s("a", now=0.0) for _ in range(3)] == [0, 0, pytest.approx(0.5)]
    assert limiter.wait_s("a", now=0.6) == 0  # 1.2 tokens back after 0.6 s


def test_stalled_upload_gets_408(setup):
    """A client that promises a body and stops sending is cut off at the timeout (slowloris)."""
    with serve(app_with(setup, request_timeout_s=1.0)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /search/image HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 100000\r\n\r\n--b\r\n"
            )
            started = time.monotonic()
            reply = sock.recv(4096).decode()
            assert time.monotonic() - started < FAST_S
    assert reply.startswith("HTTP/1.1 408") and "RequestTimeoutError" in reply


def test_slow_handler_gets_504():
    async def slow(scope, receive, send):
        await asyncio.sleep(5)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=TimeoutMiddleware(slow, seconds=0.2))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get("/search")

    started = time.monotonic()
    r = asyncio.run(call())
    assert time.monotonic() - started < 2
    assert assert_json_error(r, 504)["error"] == "the server did not answer within 0.2 s"


def test_cors_allow_list(setup):
    with (
        serve(app_with(setup, cors_origins=["https://shop.example"])) as url,
        httpx.Client(base_url=url) as c,
    ):
        ok = c.get("/search", params={"q": "red"}, headers={"Origin": "https://shop.example"})
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        other = c.get("/search", params={"q": "red"}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        pre = c.options(
            "/search/image",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]


# --- hostile requests -------------------------------------------------------------------------------

TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "....//....//etc/passwd",
    "..\\..\\windows\\win.ini",
    "-1",
    "0",
    "99999999999999999999999",
    "1e3",
    "%00",
]


@pytest.fixture(scope="module")
def open_client(setup) -> Iterator[tuple[httpx.Client, object]]:
    app = app_with(setup, rate_per_s=None)  # hundreds of hostile requests in a row: the limit is tested apart
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c, app


def test_path_traversal_in_every_path_parameter(open_client):
    client, app = open_client
    paths = app.openapi()["paths"]
    templates = [(path, method) for path, methods in paths.items() if "{" in path for method in methods]
    assert len(templates) >= 4
    for template, method in [*templates, ("/web/{file}", "get")]:
        for attack in TRAVERSALS:
            path = re.sub(r"\{[^}]+\}", lambda _, attack=attack: attack, template)
            started = time.monotonic()
            r = client.request(method.upper(), path, json={} if method in ("put", "post") else None)
            assert time.monotonic() - started < FAST_S
            assert r.status_code in (400, 404, 422), (method, path, r.status_code)
            assert b"root:" not in r.content and b"[fonts]" not in r.content


def test_nul_bytes_in_queries(open_client):
    client, _ = open_client
    for params in (
        {"q": "red\x00"},
        {"q": "red", "where": 'kind = "image\x00"'},
        {"q": "a", "path_prefix": "/\x00"},
    ):
        assert "NUL" in assert_json_error(client.get("/search", params=params), 400)["error"]
    r = client.post("/answer", json={"question": "what\x00is red?"})
    assert r.status_code in (400, 503)  # 503 when no answer model is installed: refused either way


def test_huge_k_and_huge_query(open_client):
    client, _ = open_client
    for k in ("1000000", "99999999999999999999", "-5"):  # a number out of range: the engine's 400
        assert_json_error(client.get("/search", params={"q": "red", "k": k}), 400)
    assert_json_error(client.get("/search", params={"q": "red", "k": "nan"}), 422)  # no number
    assert_json_error(client.get("/search", params={"q": "x" * 60_000}), 414, 422)


def test_thousands_of_multipart_parts(open_client):
    client, _ = open_client
    fields = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(5000)
    )
    body = fields + b"--b--\r\n"
    started = time.monotonic()
    r = client.post(
        "/search/image", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert time.monotonic() - started < FAST_S
    assert_json_error(r, 400, 413, 422)


def test_garbage_content_types_and_json(open_client):
    client, _ = open_client
    cases = [
        ("/search", b"{", "application/json"),
        ("/search", b'{"terms": [{"text": "red", "weight": 1e999}]}', "application/json"),
        ("/search", b"\xff\xfe\x00", "application/json"),
        ("/search/image", b"--b\r\n", "multipart/form-data; boundary=b"),
        ("/search/image", b"x", "multipart/form-data"),
        ("/admin/index", b'{"root": "/etc"}', "application/json"),
        ("/admin/index", b'{"root": "../../"}', "application/json"),
    ]
    for path, content, ctype in cases:
        assert_json_error(client.post(path, content=content, headers={"Content-Type": ctype}), 400, 415, 422)


# --- index runs over HTTP, metrics ----------------------------------------------------------------------


def test_index_run_over_http_while_searching(setup):
    app = app_with(setup, index_roots=[setup.incoming])
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        before = c.get("/ready").json()["items"]
        assert c.get("/admin/index").json()["state"] == "idle"
        started = c.post("/admin/index", json={})
        assert started.status_code == 202, started.text
        assert started.json()["root"] == str(setup.incoming.resolve())
        seen, deadline = [], time.monotonic() + 120
        while True:
            assert c.get("/search", params={"q": "a picture", "k": 3}).status_code == 200
            run = c.get("/admin/index").json()
            seen.append(run["state"])
            if run["state"] not in ("running", "cancelling") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert run["state"] == "done", run
        assert (run["indexed"], run["failed"], run["done"], run["total"]) == (5, 0, 5, 5)
        assert c.get("/ready").json()["items"] == before + 5
        picture = next(setup.incoming.iterdir())
        hit = c.post("/search/image", params={"k": 1}, files={"file": picture.read_bytes()}).json()["hits"][0]
        assert hit["uri"] == str(picture.resolve())
        # Again: nothing new, all skipped.
        assert c.post("/admin/index", json={"root": "incoming"}).status_code == 202
        deadline = time.monotonic() + 60
        while (run := c.get("/admin/index").json())["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (run["state"], run["indexed"], run["skipped"]) == ("done", 0, 5)
        assert_json_error(c.post("/admin/index", json={"root": str(setup.incoming.parent)}), 400)


def test_index_run_needs_configured_roots(open_client):
    client, _ = open_client
    body = assert_json_error(client.post("/admin/index"), 400)
    assert "MMSEARCH_API__INDEX_ROOTS" in body["error"]


def test_metrics(setup):
    with serve(app_with(setup)) as url, httpx.Client(base_url=url) as client:
        check_metrics(client, setup)


def check_metrics(client: httpx.Client, setup: Setup) -> None:
    for _ in range(3):
        assert client.get("/search", params={"q": "red"}).status_code == 200
    client.get("/items/999999")
    text = client.get("/metrics").text
    assert re.search(
        r'mmsearch_http_request_duration_seconds_count\{method="GET",route="/search",status="200"\} [3-9]',
        text,
    )
    assert 'route="/items/{item_id}",status="404"' in text
    vectors = int(float(re.search(r'mmsearch_index_vectors\{space="image"\} (\S+)', text).group(1)))
    assert vectors == len(setup.engine.store.vectors["image"])
    assert "mmsearch_index_run_active 0.0" in text
    assert re.search(r'mmsearch_encode_batch_seconds_count\{kind="text"\} [3-9]', text)


# --- load -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_load_while_an_index_run_writes(tmp_path):
    """16 clients of mixed word and picture queries against a server in its own process, while the same
    server indexes 300 new files: not one error, and the run makes progress during the load."""
    write_images(tmp_path / "images", 40)
    write_images(tmp_path / "incoming", 300, seed=3)
    # The server process knows only the package's own model configs (test-vit is registered by conftest).
    model = {"name": "mmsearch-tiny", "random_weights": True, "device": "cpu"}
    settings = Settings(index_dir=tmp_path / "idx", model=model)
    engine = Engine.open(settings, create=True)
    index_folder(tmp_path / "images", engine.encoder, engine.store, settings.indexer)
    engine.close()
    result = bench_serve(settings, clients=16, seconds=8, idle_queries=10, index_while=tmp_path / "incoming")
    assert result.errors == 0, result.error_samples
    assert result.load_text.requests > 50 and result.load_image.requests > 10
    assert result.load_text.p99_ms >= result.load_text.p50_ms > 0
    assert result.index_run["done"] > 0 and result.index_run["state"] in ("running", "done")
    print(result.to_dict())
