"""The picture behind a hit: its scene's stored keyframe, or the image file itself, read through the door
(search/user_files.py). What the reranker scores, the answerer shows a model and MCP sends an agent."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from mmsearch.defaults import MAX_IMAGE_PIXELS
from mmsearch.encode.images import decode_image, read_picture
from mmsearch.hits import Hit
from mmsearch.storage.catalog import Catalog


def hit_picture(
    catalog: Catalog, hit: Hit, min_side: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> Image.Image | None:
    """The hit's keyframe, or its picture file; None for a recording. MediaError where the file changed
    into something unreadable or went since it was indexed."""
    if hit.has_thumbnail:
        jpeg = catalog.thumbnail(hit.segment_id)
        return None if jpeg is None else decode_image(jpeg, max_pixels, min_side=min_side).image
    if hit.kind == "image":
        return read_picture(Path(hit.uri), max_pixels, min_side=min_side).image
    return None
