"""Zero-shot classification over HTTP: an upload or an indexed item, against labels given per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mmsearch import InvalidQueryError, MediaTooLargeError
from mmsearch.api.deps import EngineDep, SettingsDep
from mmsearch.api.errors import error_responses
from mmsearch.query.request import Picture
from mmsearch.user_files import megabytes

router = APIRouter(tags=["classify"])
MAX_LABELS = 1000


class LabelOut(BaseModel):
    label: str
    score: float = Field(description="probability (single-label) or cosine (multi-label, with threshold)")


class ClassifyOut(BaseModel):
    mode: str = Field(description="'single' (softmax over the labels) or 'multi' (a cosine threshold)")
    labels: list[LabelOut] = Field(description="best first")


@router.post(
    "/classify",
    summary="Zero-shot labels for an uploaded picture or an indexed item",
    response_model=ClassifyOut,
    responses=error_responses(400, 404, 413, 422, 503),
)
async def classify(
    engine: EngineDep,
    settings: SettingsDep,
    labels: Annotated[str, Form(max_length=20_000, description="comma-separated labels")],
    file: Annotated[UploadFile | None, File(description="the picture (or give item_id)")] = None,
    item_id: Annotated[int | None, Form(ge=1, le=2**63 - 1, description="an indexed item")] = None,
    templates: Annotated[list[str] | None, Form(description="prompt templates with {}")] = None,
    threshold: Annotated[float | None, Form(ge=-1, le=1, description="multi-label cosine threshold")] = None,
    top: Annotated[int, Form(ge=1, le=MAX_LABELS)] = 5,
) -> ClassifyOut:
    if (file is None) == (item_id is None):
        raise InvalidQueryError("give either a file or an item_id")
    names = [label for label in labels.split(",") if label.strip()]
    if len(names) > MAX_LABELS:
        raise InvalidQueryError(f"at most {MAX_LABELS} labels")
    target: Picture | int = item_id
    if file is not None:
        limit = settings.search.max_picture_bytes
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise MediaTooLargeError(f"the upload is over the limit of {megabytes(limit)}")
        target = Picture(data)
    found = await run_in_threadpool(engine.classify, target, names, templates, top, threshold)
    mode = "single" if threshold is None else "multi"
    return ClassifyOut(mode=mode, labels=[LabelOut(label=label, score=score) for label, score in found])
