"""Prometheus metrics at GET /metrics: request latency per route, encoder batch timings, index size.

Each app has its own registry (several apps live in one test process). Routes are labelled by their
template (`/items/{item_id}`), never the raw path, so hostile paths cannot grow the label set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "mmsearch_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.encode = Histogram(
            "mmsearch_encode_batch_seconds",
            "Time to encode one batch, by input kind",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_encode(self, kind: str, seconds: float) -> None:
        self.encode.labels(kind).observe(seconds)

    def watch(self, app_state) -> None:
        """Reports the open index's size (read at scrape time) from `app_state.engine`."""
        self.registry.register(IndexCollector(app_state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class IndexCollector(Collector):
    def __init__(self, app_state):
        self.state = app_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine = getattr(self.state, "engine", None)
        if engine is None:
            return
        vectors = GaugeMetricFamily("mmsearch_index_vectors", "Vectors in the search index", labels=["space"])
        for space, count in engine.vector_counts().items():
            vectors.add_metric([space], count)
        yield vectors
        runner = getattr(self.state, "index_runner", None)
        run = runner.run if runner is not None else None
        running = GaugeMetricFamily("mmsearch_index_run_active", "1 while an index run is going")
        running.add_metric([], 1.0 if run is not None and run.state in ("running", "cancelling") else 0.0)
        yield running
        if run is not None:
            done = GaugeMetricFamily("mmsearch_index_run_files_done", "Files processed by the last run")
            done.add_metric([], run.done)
            yield done


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watched_send(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope.get("method", ""), route, str(status)).observe(
                time.perf_counter() - started
            )


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: request latency per route, encoder batch timings, index size",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
