"""Concept endpoints: the concepts taught by examples, and the items each is least sure of (what to mark
next); teaching and forgetting are index writes, under /admin (an admin key where keys are configured).
Using a concept is /search's: `concept = "my dog"` in `where`, `boost`, or a term `{"concept": ...}`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from mmsearch.api.deps import EngineDep, shown_uris
from mmsearch.api.errors import error_responses
from mmsearch.api.routes.search import DISLIKED_DOC, LIKED_DOC, ItemIds
from mmsearch.query.request import MAX_FEEDBACK

router = APIRouter(tags=["concepts"])

Name = Annotated[str, Path(min_length=1, max_length=256, description="the concept's name, e.g. my dog")]


class ConceptOut(BaseModel):
    name: str
    items: int = Field(description="the items it holds (tagged with it)")
    liked: int = Field(description="examples of it it was taught")
    disliked: int = Field(description="examples of what it is not")
    updated: dt.datetime


class ExamplesIn(BaseModel):
    liked: ItemIds = Field([], max_length=MAX_FEEDBACK, description=LIKED_DOC.replace("feedback", "examples"))
    disliked: ItemIds = Field(
        [], max_length=MAX_FEEDBACK, description=DISLIKED_DOC.replace("feedback", "examples")
    )


class ToLabelOut(BaseModel):
    item_id: int
    uri: str
    probability: float = Field(description="how sure the concept is that the item is it")
    thumbnail_url: str


@router.get("/concepts", summary="The concepts taught by examples", response_model=list[ConceptOut])
def concepts(engine: EngineDep) -> list[ConceptOut]:
    return [ConceptOut(**vars(c)) for c in engine.concepts.listed()]


@router.get(
    "/concepts/{name}/next",
    summary="The items a concept is least sure of: marking them teaches it the most",
    response_model=list[ToLabelOut],
    responses=error_responses(400, 404),
)
def to_label(
    request: Request,
    engine: EngineDep,
    name: Name,
    n: Annotated[int, Query(ge=1, le=100, description="how many items")] = 8,
) -> list[ToLabelOut]:
    root = request.scope.get("root_path", "").rstrip("/")
    shown = shown_uris(request)
    return [
        ToLabelOut(
            item_id=i,
            uri=shown(engine.item(i).uri),
            probability=round(p, 4),
            thumbnail_url=f"{root}/items/{i}/thumbnail",
        )
        for i, p in engine.to_label(name, n)
    ]


@router.put(
    "/admin/concepts/{name}",
    summary="Teach a concept examples (beside those it was taught); every item it holds is tagged",
    response_model=ConceptOut,
    responses=error_responses(400, 404),
)
def teach(engine: EngineDep, name: Name, body: ExamplesIn) -> ConceptOut:
    return ConceptOut(**vars(engine.teach(name, body.liked, body.disliked)))


@router.delete(
    "/admin/concepts/{name}",
    summary="Forget a concept, its examples and its tags",
    responses=error_responses(404),
)
def forget(engine: EngineDep, name: Name) -> dict:
    engine.concepts.forget(name)
    return {"forgotten": name}
