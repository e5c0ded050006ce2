"""The HTTP API: `create_app(settings)` builds a FastAPI app; nothing is created at import time.

    uvicorn.run(create_app(Settings()), host=..., port=...)   # or: mmsearch serve

The app's lifespan opens the index (`Engine.open`) and closes it at shutdown, unless an open engine is
passed in (tests share one; the caller then owns it). Encoding and searching are blocking CPU work and
run in the threadpool, never on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from mmsearch import Engine, Settings
from mmsearch.api import metrics
from mmsearch.api.access import AccessMiddleware, check_exposure
from mmsearch.api.errors import install_error_handlers
from mmsearch.api.faces import FaceBlur
from mmsearch.api.index_runs import IndexRunner
from mmsearch.api.limits import BodyLimitMiddleware, TimeoutMiddleware
from mmsearch.api.routes import admin, answer, classify, concepts, health, items, people, search, stacks

WEB = Path(__file__).with_name("web")  # the page at / (plain HTML, CSS and JS: no build step)

DESCRIPTION = """\
Multimodal semantic search over an mmsearch index: find images, video moments and speech by a text
query, an example image or both, answer questions with citations, tag and filter, in one CLIP space.

Every error is JSON: `{"error": "<message>", "type": "<name>"}` (422s add `detail`).

With API keys configured, every route but /health needs one: `Authorization: Bearer KEY`. Read keys
may search; /admin routes need an admin key.
"""


def _version() -> str:
    try:
        return version("mmsearch")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The API over the index in `settings.index_dir`; with `engine`, over that open engine instead.

    Refuses (ConfigError) to be bound to a non-loopback `settings.api.host` without API keys."""
    check_exposure(settings.api)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = engine or await run_in_threadpool(Engine.open, settings)  # loads the model: seconds
        app.state.engine = opened
        opened.observe_encoding(app.state.metrics.observe_encode)
        app.state.index_runner = IndexRunner(opened, settings)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.index_runner.close)
            app.state.index_runner = None
            if engine is None:  # the caller owns an engine it passed in
                app.state.engine = None
                opened.close()

    app = FastAPIOffline(  # Swagger UI and ReDoc from the package: /docs works offline, no CDN
        static_url="/docs-assets",
        title="mmsearch",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "search", "description": "Ranked hits for a text or an image query."},
            {"name": "items", "description": "Catalog rows, thumbnails and media of indexed files."},
            {"name": "answer", "description": "Answers from a vision-language model, with citations."},
            {"name": "classify", "description": "Zero-shot labels for a picture or an item."},
            {"name": "people", "description": "People found in faces: listed, their faces; named (admin)."},
            {
                "name": "concepts",
                "description": "Concepts taught by examples: listed, what to mark next; taught (admin).",
            },
            {"name": "stacks", "description": "Shots of one moment, with their best shot; picked (admin)."},
            {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
            {"name": "admin", "description": "Index runs started over HTTP (admin key)."},
        ],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.index_runner = None
    app.state.thumbnails = items.ThumbnailCache()
    app.state.faces = FaceBlur() if settings.api.blur_faces else None  # fails here, before serving any
    app.state.metrics = metrics.Metrics()
    app.state.metrics.watch(app.state)
    install_error_handlers(app)
    # Added innermost first: a request meets metrics, CORS, access (keys, rate), timeout, body limit.
    api = settings.api
    app.add_middleware(BodyLimitMiddleware, max_upload_bytes=api.max_upload_bytes)
    app.add_middleware(TimeoutMiddleware, seconds=api.request_timeout_s)
    app.add_middleware(AccessMiddleware, api=api)
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
            max_age=600,
        )
    app.add_middleware(metrics.MetricsMiddleware, metrics=app.state.metrics)
    for module in (search, items, people, concepts, stacks, answer, classify, health, metrics, admin):
        app.include_router(module.router)
    app.mount("/web", StaticFiles(directory=WEB), name="web")
    app.add_api_route("/", lambda: FileResponse(WEB / "index.html"), include_in_schema=False)
    return app
