"""`mmsearch bench serve`: latency of the HTTP API under concurrent load, optionally while an index run
writes, against the same server's idle latency measured in the same run.

The server runs in its own process (so the load generator does not share its GIL), on a free loopback
port, with the rate limit off. Queries are a mix of words and pictures; the pictures are the index's own
thumbnails, fetched over the API, so the benchmark needs nothing but an index folder.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from mmsearch import Settings
from mmsearch.api.bench.measure import Stopwatch, percentiles_ms, rate, ratio

TEXTS = [
    "a red circle", "a blue square", "a green triangle", "something yellow", "a picture of a dog",
    "the lighthouse keeper", "a street at night", "someone talking about the sea", "a small purple shape",
    "an orange on a table", "people in a room", "a car", "waves", "a diagram", "a white background",
]  # fmt: skip
READY_S = 300.0  # loading a large model can take minutes


@dataclass
class Latencies:
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @classmethod
    def of(cls, seconds: list[float], errors: int) -> Latencies:
        if not seconds:
            return cls(errors=errors)
        p50, p99, worst = percentiles_ms(seconds, (50, 99, 100), 2)
        return cls(len(seconds) + errors, errors, p50, p99, worst)


@dataclass
class ServeBench:
    clients: int
    seconds: float
    idle_text: Latencies
    idle_image: Latencies
    load_text: Latencies
    load_image: Latencies
    throughput_rps: float
    index_run: dict | None = None
    error_samples: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(x.errors for x in (self.idle_text, self.idle_image, self.load_text, self.load_image))

    def slowdown(self) -> float | None:
        """p50 of text queries under load over their p50 alone: what concurrency costs one query."""
        if self.load_text.p50_ms and self.idle_text.p50_ms:
            return ratio(self.load_text.p50_ms, self.idle_text.p50_ms, 2)
        return None

    def to_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors, "slowdown": self.slowdown()}


def _serve(settings: Settings, port: int) -> None:
    import uvicorn

    from mmsearch.api.app import create_app

    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Load:
    """Sends queries and keeps their latencies; anything but a 200 is an error."""

    def __init__(self, client: httpx.AsyncClient, pictures: list[bytes], image_share: float, seed: int):
        self.client, self.pictures, self.image_share = client, pictures, image_share
        self.rng = random.Random(seed)
        self.times: dict[str, list[float]] = {"text": [], "image": []}
        self.errors: dict[str, int] = {"text": 0, "image": 0}
        self.samples: list[str] = []

    async def one(self, kind: str | None = None) -> None:
        if kind is None:
            use_image = self.pictures and self.rng.random() < self.image_share
            kind = "image" if use_image else "text"
        clock = Stopwatch()
        try:
            if kind == "image":
                files = {"file": ("q.jpg", self.rng.choice(self.pictures), "image/jpeg")}
                r = await self.client.post("/search/image", params={"k": 10}, files=files)
            else:
                r = await self.client.get("/search", params={"q": self.rng.choice(TEXTS), "k": 10})
        except httpx.HTTPError as exc:
            self._failed(f"{kind}: {type(exc).__name__}: {exc}", kind)
            return
        if r.status_code == 200:
            self.times[kind].append(clock.seconds())
        else:
            self._failed(f"{kind}: HTTP {r.status_code} {r.text[:200]}", kind)

    def _failed(self, problem: str, kind: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(problem)

    def latencies(self, kind: str) -> Latencies:
        return Latencies.of(self.times[kind], self.errors[kind])


async def _pictures(client: httpx.AsyncClient, n: int) -> list[bytes]:
    r = await client.get("/search", params={"q": "a picture", "kind": "image", "k": n, "all": "true"})
    r.raise_for_status()
    out = []
    for hit in r.json()["hits"]:
        thumb = await client.get(hit["thumbnail_url"]) if hit["thumbnail_url"] else None
        if thumb is not None and thumb.status_code == 200:
            out.append(thumb.content)
    return out


async def _wait_ready(client: httpx.AsyncClient, process: multiprocessing.Process) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError("the server exited during startup (see its log above)")
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the server was not ready after {READY_S:g} s")


async def _run(
    base: str,
    process: multiprocessing.Process,
    clients: int,
    seconds: float,
    idle_queries: int,
    image_share: float,
    index_while: bool,
) -> ServeBench:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await _wait_ready(client, process)
        pictures = await _pictures(client, 20)
        idle = Load(client, pictures, image_share, seed=1)
        for i in range(idle_queries):  # one at a time: the server's own latency
            await idle.one("text")
            if pictures and i % 2:
                await idle.one("image")
        if index_while:
            (await client.post("/admin/index", json={})).raise_for_status()
        load = Load(client, pictures, image_share, seed=2)
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < stop:
                await load.one()

        clock = Stopwatch()
        await asyncio.gather(*(worker() for _ in range(clients)))
        took = clock.seconds()
        run = (await client.get("/admin/index")).json() if index_while else None
        if run is not None and run["state"] == "running":
            await client.delete("/admin/index")
        done = sum(len(t) for t in load.times.values())
        return ServeBench(
            clients,
            round(took, 1),
            idle.latencies("text"),
            idle.latencies("image"),
            load.latencies("text"),
            load.latencies("image"),
            rate(done, took, 1),
            run,
            idle.samples + load.samples,
        )


def bench_serve(
    settings: Settings,
    clients: int = 16,
    seconds: float = 30.0,
    idle_queries: int = 50,
    image_share: float = 0.3,
    index_while: Path | None = None,
) -> ServeBench:
    """Starts a server over `settings.index_dir`, measures idle latency, then `clients` concurrent
    clients for `seconds`, while indexing `index_while` through /admin/index when given."""
    roots = [index_while] if index_while else []
    api = {"rate_per_s": None, "host": "127.0.0.1", "read_keys": [], "admin_keys": [], "index_roots": roots}
    settings = settings.model_copy(update={"api": settings.api.model_copy(update=api)})
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(settings, port), daemon=True)
    process.start()
    try:
        return asyncio.run(
            _run(
                f"http://127.0.0.1:{port}",
                process,
                clients,
                seconds,
                idle_queries,
                image_share,
                index_while is not None,
            )
        )
    finally:
        process.terminate()
        process.join(30)
