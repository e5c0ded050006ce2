"""Answer endpoints: a question answered by a vision-language model from the top hits, with citations.

`POST /answer` returns the whole answer as JSON. `POST /answer/stream` sends server-sent events: one
`evidence` event (the numbered hits), `token` events as the model writes, then `answer` (the text with
its citations) or `error`. A failing or silent backend gives 502 / 504 with the evidence still in the
body (JSON), or an `error` event after the evidence (stream): the search part is never lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from mmsearch import BackendError, Filters, MMSearchError
from mmsearch.answer.answerer import Answer, Answerer, Evidence
from mmsearch.api.deps import EngineDep, SettingsDep
from mmsearch.api.errors import error_responses, status_for
from mmsearch.api.routes.search import HitOut, Kind, hits_out

router = APIRouter(tags=["answer"])
MAX_QUESTION_CHARS = 1000


class AnswerIn(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="in plain language")
    kind: Kind | None = Field(None, description="only items of this kind")
    path_prefix: str | None = Field(None, min_length=1, max_length=4096, description="only files under this")
    where: str | None = Field(None, max_length=2000, description="a filter (docs/filters.md)")


class EvidenceOut(HitOut):
    """A hit the model was shown, in the shape every search returns, with the number it is cited by."""

    number: int = Field(description="the [number] the answer cites")
    with_image: bool = Field(description="whether a picture of it was sent to the model")


class AnswerOut(BaseModel):
    question: str
    answer: str
    answered: bool = Field(description="false when nothing relevant was found and no model was asked")
    backend: str | None
    citations: list[EvidenceOut] = Field(description="the evidence the answer cites, in order of citation")
    unknown_citations: list[int] = Field(description="numbers the answer cites that name no evidence")
    evidence: list[EvidenceOut] = Field(description="everything the model was shown")
    took_ms: float


def get_answerer(request: Request, engine: EngineDep, settings: SettingsDep) -> Answerer:
    answerer = getattr(request.app.state, "answerer", None)
    if answerer is None or answerer.engine is not engine:
        answerer = request.app.state.answerer = Answerer(engine, settings.answer)
    return answerer


AnswererDep = Annotated[Answerer, Depends(get_answerer)]


def evidence_out(request: Request, evidence: list[Evidence]) -> list[EvidenceOut]:
    hits = hits_out(request, [e.hit for e in evidence])
    return [
        EvidenceOut(**h.model_dump(), number=e.number, with_image=e.image is not None)
        for h, e in zip(hits, evidence, strict=True)
    ]


def answer_out(request: Request, answer: Answer, took_ms: float) -> AnswerOut:
    return AnswerOut(
        question=answer.question,
        answer=answer.text,
        answered=answer.answered,
        backend=answer.backend,
        citations=evidence_out(request, answer.citations),
        unknown_citations=answer.unknown_citations,
        evidence=evidence_out(request, answer.evidence),
        took_ms=round(took_ms, 3),
    )


class AnswerStatusOut(BaseModel):
    ready: bool = Field(description="an answer may come; false: the message says why and what to set")
    backend: str
    model: str | None
    message: str | None = None


@router.get(
    "/answer/status",
    summary="Whether questions can be answered here, and if not, why and what to set",
    response_model=AnswerStatusOut,
)
def answer_status(answerer: AnswererDep) -> AnswerStatusOut:
    why = answerer.why_not
    s = answerer.settings
    return AnswerStatusOut(ready=why is None, backend=s.backend, model=s.model, message=why)


def _filters(body: AnswerIn) -> Filters:
    return Filters(kind=body.kind, path_prefix=body.path_prefix, where=body.where)


@router.post(
    "/answer",
    summary="Answer a question from the collection, citing the hits used",
    response_model=AnswerOut,
    responses=error_responses(400, 422, 502, 503, 504),
)
def answer(request: Request, answerer: AnswererDep, body: AnswerIn):
    start = time.perf_counter()
    evidence = answerer.evidence(body.question.strip(), _filters(body))
    try:
        result = answerer.answer(body.question, _filters(body), evidence=evidence)
    except BackendError as exc:
        content = {
            "error": str(exc),
            "type": type(exc).__name__,
            "evidence": [e.model_dump() for e in evidence_out(request, evidence)],
        }
        return JSONResponse(content, status_code=status_for(exc))
    return answer_out(request, result, (time.perf_counter() - start) * 1000)


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@router.post(
    "/answer/stream",
    summary="The same answer as server-sent events: evidence, tokens, then the answer with citations",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(400, 422, 503)},
)
def answer_stream(request: Request, answerer: AnswererDep, body: AnswerIn) -> StreamingResponse:
    start = time.perf_counter()
    evidence = answerer.evidence(body.question.strip(), _filters(body))  # errors here are plain 4xx/5xx

    def events() -> Iterator[str]:
        yield _event("evidence", [e.model_dump() for e in evidence_out(request, evidence)])
        try:
            for piece in answerer.stream(body.question, _filters(body), evidence=evidence):
                if isinstance(piece, Answer):
                    took = (time.perf_counter() - start) * 1000
                    yield _event("answer", answer_out(request, piece, took).model_dump(mode="json"))
                else:
                    yield _event("token", {"text": piece})
        except MMSearchError as exc:  # after the evidence went out: an event, never a cut connection
            yield _event("error", {"error": str(exc), "type": type(exc).__name__, "status": status_for(exc)})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
