"""Liveness (GET /health: the process answers) and readiness (GET /ready: model loaded, index open)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import BaseModel, Field

from mmsearch import IndexStateError
from mmsearch.api.deps import EngineDep
from mmsearch.api.errors import error_responses

router = APIRouter(tags=["health"])
log = logging.getLogger("api")


class LiveOut(BaseModel):
    status: str = Field(description="'ok' whenever the server answers")


class ReadyOut(BaseModel):
    status: str
    items: int = Field(description="indexed items")
    failed: int = Field(description="items that could not be indexed")
    segments: int
    vectors: int = Field(description="vectors in the search index")
    model: str


@router.get("/health", summary="Liveness: the server answers", response_model=LiveOut)
async def health() -> LiveOut:
    return LiveOut(status="ok")


@router.get(
    "/ready",
    summary="Readiness: the model is loaded and the index open, with its size",
    response_model=ReadyOut,
    responses=error_responses(503),
)
def ready(engine: EngineDep) -> ReadyOut:
    try:
        info = engine.info()
    except Exception as exc:
        log.exception("health check failed")
        raise IndexStateError(f"the index is unavailable ({type(exc).__name__})") from exc
    return ReadyOut(
        status="ready",
        items=info.get("indexed", 0),
        failed=info.get("failed", 0),
        segments=info.get("segments", 0),
        vectors=info.get("vectors", 0),
        model=engine.model,
    )
