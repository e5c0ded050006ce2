"""Errors at the HTTP edge: every failure leaves as JSON `{"error": message, "type": name}`.

Domain errors (`mmsearch.errors`) map to a status by class; request validation gives 422 with the
offending fields in `detail`; an unexpected exception gives a 500 that names nothing internal.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from mmsearch.errors import (
    BackendError,
    BackendTimeoutError,
    BusyError,
    ConfigError,
    IndexStateError,
    InvalidQueryError,
    MediaError,
    MediaTooLargeError,
    MMSearchError,
    ModelMismatchError,
    ModelUnavailableError,
    NotFoundError,
)

log = logging.getLogger("api")

# Looked up along the exception's MRO, so a subclass gets its own code before its parent's.
STATUS: dict[type[MMSearchError], int] = {
    InvalidQueryError: 400,
    ConfigError: 400,
    MediaError: 400,
    MediaTooLargeError: 413,
    NotFoundError: 404,
    BusyError: 409,
    ModelMismatchError: 503,
    IndexStateError: 503,
    ModelUnavailableError: 503,
    BackendError: 502,
    BackendTimeoutError: 504,
}


class ErrorOut(BaseModel):
    error: str
    type: str
    detail: list[dict] | None = None


# For `responses=` in route decorators, so the OpenAPI schema documents the error bodies.
def error_responses(*codes: int) -> dict[int | str, dict]:
    return {code: {"model": ErrorOut} for code in codes}


def status_for(exc: MMSearchError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_json(status: int, message: str, kind: str, detail: list[dict] | None = None, headers=None):
    body: dict = {"error": message, "type": kind}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MMSearchError)
    status = status_for(exc)
    if status >= 500:
        log.error("%s: %s", type(exc).__name__, exc)
    return error_json(status, str(exc) or type(exc).__name__, type(exc).__name__)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Inputs are not echoed back: an invalid field may be a large upload.
    detail = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(d['loc'][1:] or d['loc'])}: {d['msg']}" for d in detail)
    return error_json(
        422, f"invalid request: {summary}" if summary else "invalid request", "ValidationError", detail
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = getattr(exc, "error_type", "HTTPException")
    return error_json(exc.status_code, str(exc.detail), kind, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_json(500, "internal server error", "InternalServerError")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MMSearchError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
