"""Pictures served without what they say about their owner: EXIF (GPS position, camera serial, time),
XMP and IPTC. A JPEG keeps its compressed pixels (only its APP1 and APP13 segments go); another format
that carries such metadata is re-encoded as PNG, losslessly. `api.serve_originals` serves files as they
are.
"""

from __future__ import annotations

import io

from PIL import Image

APP1, APP13, SOS = 0xE1, 0xED, 0xDA  # EXIF and XMP; IPTC (Photoshop); start of scan: pixels follow
STANDALONE = {0x01, *range(0xD0, 0xD9)}  # markers with no length field


def without_metadata(data: bytes) -> tuple[bytes, str | None]:
    """The picture's bytes without EXIF, XMP or IPTC, and its new media type (None: unchanged)."""
    if data[:2] == b"\xff\xd8":
        stripped = _jpeg_without(data)
        if stripped is not None:
            return stripped, None
    try:
        with Image.open(io.BytesIO(data)) as im:
            if not (im.getexif() or {"xmp", "XML:com.adobe.xmp", "iptc", "exif"} & set(im.info)):
                return data, None
            im.load()
            out = io.BytesIO()
            im.save(out, "PNG")  # Pillow writes no EXIF, XMP or text chunks unless asked to
            return out.getvalue(), "image/png"
    except (OSError, ValueError, SyntaxError):
        return data, None  # not a picture Pillow reads: nothing of this kind to take out


def _jpeg_without(data: bytes) -> bytes | None:
    """A JPEG without its APP1 and APP13 segments; None when its markers do not parse."""
    out, i = [data[:2]], 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in STANDALONE:
            out.append(data[i : i + 2])
            i += 2
            continue
        if marker == SOS:
            out.append(data[i:])
            return b"".join(out)
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if end > len(data):
            return None
        if marker not in (APP1, APP13):
            out.append(data[i:end])
        i = end
    return None
