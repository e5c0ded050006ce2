"""Item endpoints: a catalog row, a JPEG thumbnail, the media file itself (with HTTP range requests, so
a video element can seek), and stored keyframe thumbnails of segments.

Files are found only through the catalog (the uri the indexer recorded for an indexed item id); nothing
in the request names a path. Thumbnails are re-encoded JPEGs, never the file's own bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import mimetypes
import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from mmsearch import MediaError, NotFoundError
from mmsearch.api.deps import EngineDep, SettingsDep, shown_uris
from mmsearch.api.errors import error_responses
from mmsearch.api.faces import FaceBlur, decode_side, shrunk, veiled
from mmsearch.api.private import developed, media_without_metadata, without_metadata
from mmsearch.encode.images import decode_image, is_raw
from mmsearch.hits import INDEXED
from mmsearch.user_files import read_file

router = APIRouter(tags=["items"])

MAX_ID = 2**63 - 1  # catalog ids are 64-bit; a larger number could not be a key
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="the item's catalog id")]
CACHE_CONTROL = "public, max-age=3600"
SERVED = "served"  # in the index folder: videos and recordings as served, without their tags (api/private.py)
# Spelled out: the system's mime.types may lack the newer ones, and a browser needs them to play.
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}
JPEG_QUALITY = 85
BLURRED = "-faces-blurred"  # in the ETag: turning api.blur_faces on never lets a cached face through
VEILED = "-veiled"  # in the ETag and the cache key: a picture safe search flagged, blurred whole
SafeQuery = Annotated[
    bool, Query(description="false: a picture safe search flagged is shown as it is, not blurred")
]


class ItemOut(BaseModel):
    id: int
    uri: str
    kind: str
    size: int = Field(description="file size in bytes")
    mtime_ns: int
    content_hash: str | None = Field(None, description="SHA-256 of the file")
    width: int | None = None
    height: int | None = None
    status: str = Field(description="'indexed' or 'failed'")
    error: str | None = Field(None, description="why indexing failed")
    indexed_at: dt.datetime | None = None
    meta: dict | None = Field(None, description="what the indexer found (duration, codecs, ...)")
    fields: dict | None = Field(None, description="what a manifest gave: typed product fields")
    thumbnail_url: str | None = Field(None, description="indexed images and videos (first keyframe)")
    media_url: str | None = Field(None, description="the file itself, for indexed items")


class ThumbnailCache:
    """A small LRU of generated JPEGs, keyed by (item id, size, file size, file mtime)."""

    def __init__(self, max_bytes: int = 16 * 2**20, max_entries: int = 512):
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._data: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._data.get(key)
            if data is not None:
                self._data.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._data[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes or len(self._data) > self.max_entries:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._data)


async def get_thumbnails(request: Request) -> ThumbnailCache:
    return request.app.state.thumbnails


ThumbnailsDep = Annotated[ThumbnailCache, Depends(get_thumbnails)]


@router.get(
    "/items/{item_id}",
    summary="One catalog item",
    response_model=ItemOut,
    responses=error_responses(404, 422, 503),
)
def get_item(request: Request, engine: EngineDep, item_id: ItemId) -> ItemOut:
    item = engine.item(item_id)
    root = request.scope.get("root_path", "").rstrip("/")
    indexed = item.status == INDEXED
    out = ItemOut.model_validate(item, from_attributes=True)
    out.uri = shown_uris(request)(item.uri)
    out.thumbnail_url = f"{root}/items/{item.id}/thumbnail" if indexed and item.kind != "audio" else None
    out.media_url = f"{root}/items/{item.id}/media" if indexed else None
    return out


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def indexed_file(item, item_id: int) -> tuple[FsPath, os.stat_result]:
    """The item's file, if it is still a regular file where the indexer found it."""
    if item.status != INDEXED:
        raise NotFoundError(f"item {item_id} is not indexed (status {item.status})")
    path = FsPath(item.uri)
    try:
        st = path.stat() if path.is_absolute() else None
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise NotFoundError(f"the file of item {item_id} is no longer on disk")
    return path, st


async def get_faces(request: Request) -> FaceBlur | None:
    return request.app.state.faces


FacesDep = Annotated[FaceBlur | None, Depends(get_faces)]


def make_thumbnail(
    data: bytes,
    size: int,
    max_pixels: int,
    faces: FaceBlur | None = None,
    raw: bool = False,
    veil: bool = False,
) -> bytes:
    """A JPEG whose longer side is at most `size` (never enlarged), EXIF orientation applied, its faces
    blurred when `faces` is given (looked for at LOOK_PX, however small the thumbnail); `raw`: camera RAW;
    `veil`: all of it blurred (flagged by safe search)."""
    decoded = decode_image(data, max_pixels, min_side=decode_side(size, faces), raw=raw)
    image = shrunk(decoded.image, size, faces)
    image = veiled(image) if veil else image
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


@router.get(
    "/items/{item_id}/thumbnail",
    summary="A JPEG thumbnail of an indexed image",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "the thumbnail"},
        304: {"description": "not modified (If-None-Match)"},
        **error_responses(404, 422, 503),
    },
)
def thumbnail(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    cache: ThumbnailsDep,
    faces: FacesDep,
    item_id: ItemId,
    size: Annotated[
        int | None, Query(ge=16, le=2048, description="longest side in pixels (default: the server's)")
    ] = None,
    safe: SafeQuery = True,
) -> Response:
    size = size or settings.api.thumbnail_px
    item = engine.item(item_id)
    veil = safe and engine.flagged(item_id)
    if item.status == INDEXED and item.kind == "video":
        segment_id = engine.keyframe(item_id)
        if segment_id is not None:
            return _keyframe(request, engine, settings, faces, cache, segment_id, size, veil)
    if item.status != INDEXED or item.kind != "image":
        raise NotFoundError(f"item {item_id} has no thumbnail (kind {item.kind}, status {item.status})")
    path, st = indexed_file(item, item_id)
    etag = (
        f'"{item_id}-{size}-{st.st_size}-{st.st_mtime_ns}{BLURRED if faces else ""}{VEILED if veil else ""}"'
    )
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    key = (item_id, size, st.st_size, st.st_mtime_ns, veil)
    jpeg = cache.get(key)
    if jpeg is None:
        try:
            data = read_file(path, settings.indexer.max_file_bytes)
            pixels = settings.indexer.max_image_pixels
            jpeg = make_thumbnail(data, size, pixels, faces, is_raw(path), veil)
        except MediaError as exc:
            raise NotFoundError(f"the file of item {item_id} can no longer be read as an image") from exc
        cache.put(key, jpeg)
    return Response(jpeg, media_type="image/jpeg", headers=headers)


class LineOut(BaseModel):
    segment_id: int
    t_start: float = Field(description="seconds from the start of the file")
    t_end: float
    text: str


@router.get(
    "/items/{item_id}/transcript",
    summary="What is said in a video or recording, line by line in time order (empty when nothing is)",
    response_model=list[LineOut],
    responses=error_responses(404, 422, 503),
)
def transcript(engine: EngineDep, item_id: ItemId) -> list[LineOut]:
    return [
        LineOut(segment_id=s.id, t_start=s.t_start, t_end=s.t_end or s.t_start, text=s.text or "")
        for s in engine.transcript(item_id)
    ]


@router.get(
    "/items/{item_id}/media",
    summary="The item's file, with HTTP range requests (206) so players can seek",
    response_class=FileResponse,
    responses={
        200: {"description": "the whole file"},
        206: {"description": "the requested byte range"},
        416: {"description": "the range is outside the file"},
        **error_responses(404, 422, 503),
    },
)
def media(engine: EngineDep, settings: SettingsDep, item_id: ItemId) -> Response:
    item = engine.item(item_id)
    path, st = indexed_file(item, item_id)
    name, suffix = path.name, path.suffix.lower()
    media_type = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if item.kind == "image" and not settings.api.serve_originals:  # no GPS, camera or time leaves here
        pixels = settings.indexer.max_image_pixels
        try:
            data = read_file(path, settings.indexer.max_file_bytes)
            if is_raw(path):
                data, changed = developed(data, pixels), "image/jpeg"
            else:
                data, changed = without_metadata(data, pixels)
        except MediaError as exc:  # changed since it was indexed, or a RAW file that no longer develops
            raise NotFoundError(f"{exc}; api.serve_originals serves files as they are") from exc
        headers = {"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=changed or media_type, headers=headers)
    if item.kind in ("video", "audio") and not settings.api.serve_originals:  # a phone's position, its make
        try:
            path = media_without_metadata(path, st, settings.index_dir / SERVED)
        except MediaError as exc:  # never the original instead: that is what the setting is for
            raise NotFoundError(f"{exc}; api.serve_originals serves files as they are") from exc
        st = path.stat()
    return FileResponse(
        path,
        media_type=media_type,
        stat_result=st,
        content_disposition_type="inline",
        filename=name,
        headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"},
    )


SegmentId = Annotated[int, Path(ge=1, le=MAX_ID, description="the segment's catalog id")]


def _keyframe(
    request: Request,
    engine,
    settings,
    faces: FaceBlur | None,
    cache: ThumbnailCache,
    segment_id: int,
    size: int | None = None,
    veil: bool = False,
) -> Response:
    # A segment never changes: new content gets new segment ids, so its thumbnail caches forever.
    etag = f'"seg-{segment_id}-{size or 0}{BLURRED if faces else ""}{VEILED if veil else ""}"'
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": etag}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    key = ("segment", segment_id, size, veil)
    jpeg = cache.get(key)
    if jpeg is None:
        jpeg = engine.thumbnail(segment_id)
        if jpeg is None:
            raise NotFoundError(f"segment {segment_id} has no thumbnail")
        image = decode_image(jpeg, settings.indexer.max_image_pixels).image
        side = min(size or max(image.size), max(image.size))
        if faces is not None or veil or side < max(image.size):
            image = shrunk(image, side, faces)
            image = veiled(image) if veil else image
            out = io.BytesIO()
            image.save(out, "JPEG", quality=JPEG_QUALITY)
            jpeg = out.getvalue()
        cache.put(key, jpeg)
    return Response(jpeg, media_type="image/jpeg", headers=headers)


@router.get(
    "/segments/{segment_id}/thumbnail",
    summary="The stored keyframe of a video moment",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "the keyframe"},
        304: {"description": "not modified (If-None-Match)"},
        **error_responses(404, 422, 503),
    },
)
def segment_thumbnail(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    faces: FacesDep,
    cache: ThumbnailsDep,
    segment_id: SegmentId,
    safe: SafeQuery = True,
) -> Response:
    veil = safe and engine.flagged(engine.segment_item(segment_id))
    return _keyframe(request, engine, settings, faces, cache, segment_id, veil=veil)
