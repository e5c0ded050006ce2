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
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_json, install_error_handlers
from api.routes import answer, classify, health, items, search
from search import Engine, Settings

WEB = Path(__file__).with_name("web")  # the page at / (plain HTML, CSS and JS: no build step)

DESCRIPTION = """\
Multimodal semantic search over an mmsearch index: find images, video moments and speech by a text
query, an example image or both, answer questions with citations, tag and filter, in one CLIP space.

Every error is JSON: `{"error": "<message>", "type": "<name>"}` (422s add `detail`).
"""

MULTIPART_SLACK = 64 * 2**10  # room for multipart boundaries and part headers around an upload


def _version() -> str:
    try:
        return version("mmsearch")
    except PackageNotFoundError:
        return "0.0.0"


class BodyTooLargeError(StarletteHTTPException):
    error_type = "MediaTooLargeError"


class BodyLimitMiddleware:
    """Refuses request bodies over the upload limit (plus multipart framing) before they are parsed or
    spooled to disk: at once when Content-Length says so, else as soon as the streamed body passes it."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int):
        self.app = app
        self.max_bytes = max_upload_bytes + MULTIPART_SLACK
        self.message = f"the request body is over the upload limit of {max_upload_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_json(
                413, self.message, BodyTooLargeError.error_type, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(413, self.message, headers={"Connection": "close"})
            return msg

        await self.app(scope, limited_receive, send)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The API over the index in `settings.index_dir`; with `engine`, over that open engine instead."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine is not None:
            app.state.engine = engine
            yield
            return
        opened = await run_in_threadpool(Engine.open, settings)  # loads the model: seconds
        app.state.engine = opened
        try:
            yield
        finally:
            app.state.engine = None
            opened.close()

    app = FastAPI(
        title="mmsearch",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "search", "description": "Ranked hits for a text or an image query."},
            {"name": "items", "description": "Catalog rows, thumbnails and media of indexed files."},
            {"name": "answer", "description": "Answers from a vision-language model, with citations."},
            {"name": "classify", "description": "Zero-shot labels for a picture or an item."},
            {"name": "health", "description": "Liveness and index size."},
        ],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.thumbnails = items.ThumbnailCache()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_upload_bytes=settings.api.max_upload_bytes)
    app.include_router(search.router)
    app.include_router(items.router)
    app.include_router(answer.router)
    app.include_router(classify.router)
    app.include_router(health.router)
    app.mount("/web", StaticFiles(directory=WEB), name="web")
    app.add_api_route("/", lambda: FileResponse(WEB / "index.html"), include_in_schema=False)
    return app
