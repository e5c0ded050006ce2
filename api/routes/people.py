"""People endpoints: the people found in the index's faces (`mmsearch index --faces`) and each face's
picture; naming, merging, hiding, "not this person" and forgetting every face are index writes, under
/admin (an admin key where keys are configured). Search by person is /search's: a name in the words or
`person = "..."` in `where`."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from PIL import Image, ImageFilter
from pydantic import BaseModel, Field

from mmsearch import MediaError, NotFoundError
from mmsearch.api.deps import EngineDep, SettingsDep
from mmsearch.api.errors import error_responses
from mmsearch.api.routes.items import CACHE_CONTROL, JPEG_QUALITY, MAX_ID, FacesDep, indexed_file
from mmsearch.encode.images import decode_image, is_raw
from mmsearch.storage.people import FaceSeen
from mmsearch.user_files import read_file

router = APIRouter(tags=["people"])

PersonId = Annotated[int, Path(ge=1, le=MAX_ID, description="the person's id")]
FaceId = Annotated[int, Path(ge=1, le=MAX_ID, description="the face's id")]
GROW = 0.4  # each side of a face's box, in box widths, in its picture: hair and chin


class PersonOut(BaseModel):
    id: int
    name: str | None
    faces: int = Field(description="faces of theirs found")
    items: int = Field(description="files they are in")
    best_face: int = Field(description="the face that shows them best: its picture is face_url")
    best_item: int = Field(description="the file that face is in")
    hidden: bool
    face_url: str


class NameIn(BaseModel):
    name: str | None = Field(max_length=256, description="their name; null takes it away")


class MergeIn(BaseModel):
    other: int = Field(ge=1, le=MAX_ID, description="the person whose faces join this one")


class HideIn(BaseModel):
    hidden: bool = True


@router.get(
    "/people", summary="The people found in the faces, most faces first", response_model=list[PersonOut]
)
def people(
    engine: EngineDep,
    everyone: Annotated[bool, Query(alias="all", description="also hidden and unnamed lone faces")] = False,
) -> list[PersonOut]:
    return [
        PersonOut(**vars(p), face_url=f"/faces/{p.best_face}/thumbnail")
        for p in engine.people.listed(everyone)
    ]


@router.get(
    "/faces/{face_id}/thumbnail",
    summary="A face, cut from its picture or keyframe (blurred where api.blur_faces is on)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404)},
)
def face_thumbnail(
    engine: EngineDep,
    settings: SettingsDep,
    faces: FacesDep,
    face_id: FaceId,
    size: Annotated[int, Query(ge=16, le=1024, description="longest side in pixels")] = 160,
) -> Response:
    face = engine.people.face(face_id)
    image = _face_picture(engine, settings, face).convert("RGB")
    image.thumbnail((size, size))
    if faces is not None:  # the people's pictures keep the blur setting too
        image = image.filter(ImageFilter.GaussianBlur(max(image.size) / 8))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return Response(out.getvalue(), media_type="image/jpeg", headers={"Cache-Control": CACHE_CONTROL})


def _face_picture(engine: EngineDep, settings: SettingsDep, face: FaceSeen) -> Image.Image:
    """The face's box, grown by GROW, cut from the file (a picture) or its stored keyframe (a video)."""
    item = engine.item(face.item_id)
    limit = settings.indexer.max_image_pixels
    try:
        if item.kind == "video":
            data = engine.thumbnail(face.segment_id)
            if data is None:
                raise NotFoundError(f"face {face.id}: its keyframe is not stored")
            decoded, raw = decode_image(data, limit), False
        else:
            path, _ = indexed_file(item, item.id)
            raw = is_raw(path)
            decoded = decode_image(read_file(path, settings.indexer.max_file_bytes), limit, raw=raw)
    except MediaError as exc:
        raise NotFoundError(f"the file of face {face.id} can no longer be read as an image") from exc
    scale = decoded.image.width / (item.width or decoded.width)
    x0, y0, x1, y1 = face.box
    grow = GROW * (x1 - x0)
    box = (x0 - grow, y0 - grow, x1 + grow, y1 + grow)
    return decoded.image.crop(tuple(round(v * scale) for v in box))


@router.put("/admin/people/{person_id}/name", summary="Name a person", responses=error_responses(400, 404))
def name_person(engine: EngineDep, person_id: PersonId, body: NameIn) -> dict:
    engine.people.name(person_id, body.name)
    return {"id": person_id, "name": body.name}


@router.post(
    "/admin/people/{person_id}/merge",
    summary="Another person's faces join this one",
    responses=error_responses(404),
)
def merge_people(engine: EngineDep, person_id: PersonId, body: MergeIn) -> dict:
    engine.people.merge(person_id, body.other)
    return {"id": person_id}


@router.post(
    "/admin/people/{person_id}/hide",
    summary="Hide a person from the list, or show them again",
    responses=error_responses(404),
)
def hide_person(engine: EngineDep, person_id: PersonId, body: HideIn) -> dict:
    engine.people.hide(person_id, body.hidden)
    return {"id": person_id, "hidden": body.hidden}


@router.post(
    "/admin/faces/{face_id}/not", summary="This face is not its person's", responses=error_responses(404)
)
def not_this_person(engine: EngineDep, face_id: FaceId) -> dict:
    return {"face": face_id, "person": engine.people.move_out(face_id)}


@router.delete("/admin/faces", summary="Delete every face and person of the index")
def forget_faces(engine: EngineDep) -> dict:
    return {"forgotten": engine.people.forget()}
