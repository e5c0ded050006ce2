"""Stack endpoints: the stacks of shots of one moment (where the index keeps them: `mmsearch stacks start`
or POST /admin/stacks), each with its best shot first; picking a best shot and starting to keep stacks
are index writes, under /admin. Search folds each stack into one hit (`stack`, `more`); `every_shot`
unfolds them, and `stack = 12` in `where` keeps to one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from mmsearch.api.deps import EngineDep, shown_uris
from mmsearch.api.errors import error_responses
from mmsearch.api.routes.items import MAX_ID
from mmsearch.storage.stacks import StackSummary

router = APIRouter(tags=["stacks"])

StackId = Annotated[int, Path(ge=1, le=MAX_ID, description="the stack's number")]


class ShotOut(BaseModel):
    item_id: int
    uri: str
    thumbnail_url: str


class StackOut(BaseModel):
    id: int
    best_item: int = Field(description="its best shot: measured (sharpness, exposure), or picked")
    picked: bool = Field(description="the best shot was picked by a user")
    shots: list[ShotOut] = Field(description="best first, then by measured look")


class PickIn(BaseModel):
    item_id: int = Field(ge=1, le=MAX_ID, description="one of the stack's shots")


def stack_out(request: Request, engine: EngineDep, stack: StackSummary) -> StackOut:
    root = request.scope.get("root_path", "").rstrip("/")
    shown = shown_uris(request)
    shots = [
        ShotOut(item_id=i, uri=shown(engine.item(i).uri), thumbnail_url=f"{root}/items/{i}/thumbnail")
        for i in stack.members
    ]
    return StackOut(id=stack.id, best_item=stack.best_item, picked=stack.picked, shots=shots)


@router.get("/stacks", summary="The stacks, largest first", response_model=list[StackOut])
def stacks(
    request: Request,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="stacks at most")] = 100,
) -> list[StackOut]:
    return [stack_out(request, engine, s) for s in engine.stacks.listed(limit)]


@router.get(
    "/stacks/{stack_id}", summary="A stack's shots", response_model=StackOut, responses=error_responses(404)
)
def stack(request: Request, engine: EngineDep, stack_id: StackId) -> StackOut:
    return stack_out(request, engine, engine.stacks.stack(stack_id))


@router.put(
    "/admin/stacks/{stack_id}/best",
    summary="Pick a stack's best shot (kept as files arrive)",
    response_model=StackOut,
    responses=error_responses(400, 404),
)
def pick(request: Request, engine: EngineDep, stack_id: StackId, body: PickIn) -> StackOut:
    return stack_out(request, engine, engine.stacks.pick(stack_id, body.item_id))


@router.post(
    "/admin/stacks",
    summary="Keep stacks from now on, and stack the pictures indexed so far (those indexed before looks "
    "were measured are read again)",
)
def start(engine: EngineDep) -> dict:
    return {"stacks": engine.keep_stacks()}
