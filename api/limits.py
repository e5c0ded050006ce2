"""Bounds on one request: its body's size (checked while it streams in) and its time to a response."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmsearch.api.errors import error_json
from mmsearch.user_files import megabytes

MULTIPART_SLACK = 64 * 2**10  # room for multipart boundaries and part headers around an upload
UNTIMED_PREFIXES = ("/answer",)  # answers have their own (AnswerSettings.timeout_s, per token)


class BodyTooLargeError(StarletteHTTPException):
    error_type = "MediaTooLargeError"


class BodyLimitMiddleware:
    """Refuses request bodies over the upload limit (plus multipart framing) before they are parsed or
    spooled to disk: at once when Content-Length says so, else as soon as the streamed body passes it
    (chunked uploads declare no length)."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int):
        self.app = app
        self.max_bytes = max_upload_bytes + MULTIPART_SLACK
        self.message = f"the request body is over the upload limit of {megabytes(max_upload_bytes)}"

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


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers", ()))
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") not in (b"", b"0")


class TimeoutMiddleware:
    """A request with no response after `seconds` gets 408 when its body has not all arrived (a slow or
    stalled client), else 504. The work is cancelled; a thread it started finishes on its own, since
    Python cannot stop a thread. A response that has started (a stream) is not cut off."""

    def __init__(self, app: ASGIApp, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(UNTIMED_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = False
        body_done = not _has_body(scope)

        async def watched_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        async def watched_receive() -> Message:
            nonlocal body_done
            msg = await receive()
            body_done = body_done or msg["type"] != "http.request" or not msg.get("more_body", False)
            return msg

        task = asyncio.ensure_future(self.app(scope, watched_receive, watched_send))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if task in done or started:
            await task
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if body_done:
            status, kind, what = 504, "RequestTimeoutError", "the server did not answer"
        else:
            status, kind, what = 408, "RequestTimeoutError", "the request body did not arrive"
        message = f"{what} within {self.seconds:g} s"
        await error_json(status, message, kind, headers={"Connection": "close"})(scope, receive, send)
