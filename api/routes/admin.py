"""Admin endpoints (admin key when keys are configured): start, watch and cancel an index run."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from mmsearch.api.errors import error_responses
from mmsearch.api.index_runs import IndexRunner
from mmsearch.errors import IndexStateError

router = APIRouter(prefix="/admin", tags=["admin"])


class IndexRequest(BaseModel):
    root: str | None = Field(
        None, max_length=4096, description="one of the configured index roots (its path or folder name)"
    )
    prune: bool = Field(False, description="also drop indexed files under the root that are gone")


class IndexRunOut(BaseModel):
    state: str = Field(description="idle, running, cancelling, done, cancelled or failed")
    root: str | None = None
    prune: bool = False
    started_at: float | None = Field(None, description="Unix time")
    finished_at: float | None = None
    done: int = Field(0, description="files processed so far")
    total: int | None = Field(None, description="files to process (new or changed), once known")
    indexed: int = 0
    skipped: int = Field(0, description="files unchanged since the last run")
    failed: int = 0
    removed: int = 0
    errors: list[list[str]] = Field(default_factory=list, description="[uri, reason] of failed files")
    message: str | None = None
    roots: list[str] = Field(default_factory=list, description="the folders that may be indexed")


def _runner(request: Request) -> IndexRunner:
    runner = getattr(request.app.state, "index_runner", None)
    if runner is None:
        raise IndexStateError("the search engine is not open (the app's lifespan has not run)")
    return runner


def _out(runner: IndexRunner) -> IndexRunOut:
    roots = [str(r) for r in runner.roots]
    if runner.run is None:
        return IndexRunOut(state="idle", roots=roots)
    return IndexRunOut(**runner.run.to_dict(), roots=roots)


@router.post(
    "/index",
    summary="Start indexing a configured folder in the background",
    response_model=IndexRunOut,
    status_code=202,
    responses=error_responses(400, 409, 503),
)
def start_index(request: Request, body: IndexRequest | None = None) -> IndexRunOut:
    runner = _runner(request)
    body = body or IndexRequest()
    runner.start(body.root, body.prune)
    return _out(runner)


@router.get(
    "/index",
    summary="The current or last index run's progress",
    response_model=IndexRunOut,
    responses=error_responses(503),
)
def index_status(request: Request) -> IndexRunOut:
    return _out(_runner(request))


@router.delete(
    "/index",
    summary="Cancel the running index run (it stops after the file in hand; done files stay indexed)",
    response_model=IndexRunOut,
    status_code=202,
    responses=error_responses(503),
)
def cancel_index(request: Request) -> IndexRunOut:
    runner = _runner(request)
    runner.cancel()
    return _out(runner)
