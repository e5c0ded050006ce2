"""Files served without what they say about their owner. Pictures lose EXIF (GPS position, camera
serial, time), XMP and IPTC: a JPEG keeps its compressed pixels (only its APP1 and APP13 segments go);
another format that carries such metadata is re-encoded as PNG, losslessly; a camera RAW file is served
developed, as a JPEG. Videos and recordings lose
their container's and streams' tags (a phone's position, creation time, make and model): their packets
are copied, unchanged, into a new file of the same format, kept in a cache so players can seek in it.
`api.serve_originals` serves files as they are.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import av

from mmsearch.encode.images import decode_image, open_picture
from mmsearch.errors import MediaError
from mmsearch.indexer.avfile import container_format, open_container
from mmsearch.user_files import guarded

RAW_QUALITY = 92
CACHE_BYTES = 2 << 30  # copies kept for players; the least recently served go first

APP1, APP13, SOS = 0xE1, 0xED, 0xDA  # EXIF and XMP; IPTC (Photoshop); start of scan: pixels follow
STANDALONE = {0x01, *range(0xD0, 0xD9)}  # markers with no length field


def developed(data: bytes, max_pixels: int) -> bytes:
    """A camera RAW file as the JPEG it is served as: browsers show no RAW, and its maker notes are many
    and of many kinds. MediaError where it cannot be developed."""
    out = io.BytesIO()
    decode_image(data, max_pixels, raw=True).image.save(out, "JPEG", quality=RAW_QUALITY)
    return out.getvalue()


def without_metadata(data: bytes, max_pixels: int) -> tuple[bytes, str | None]:
    """The picture's bytes without EXIF, XMP or IPTC, and its new media type (None: unchanged). A
    MediaError where the bytes are no picture that can be read: what they hold cannot be vouched for."""
    if data[:2] == b"\xff\xd8":
        stripped = _jpeg_without(data)
        if stripped is not None:
            return stripped, None
    im = open_picture(data, max_pixels)
    with guarded("the picture"), im:
        if not (im.getexif() or {"xmp", "XML:com.adobe.xmp", "iptc", "exif"} & set(im.info)):
            return data, None
        im.load()
        out = io.BytesIO()
        im.save(out, "PNG")  # Pillow writes no EXIF, XMP or text chunks unless asked to
        return out.getvalue(), "image/png"


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


def media_without_metadata(path: Path, st: os.stat_result, cache: Path) -> Path:
    """A copy of the video or recording at `path` without its tags, made once per version of the file
    (its size and mtime) in `cache`. Raises MediaError when the file cannot be copied so."""
    copy = cache / f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}{path.suffix.lower()}"
    if copy.exists():
        os.utime(copy)  # recently served: kept longest
        return copy
    cache.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=cache, suffix=path.suffix.lower())
    os.close(fd)
    try:
        _remux(path, Path(partial))
        os.replace(partial, copy)
    except MediaError as exc:
        Path(partial).unlink(missing_ok=True)
        raise MediaError(f"cannot serve {path.name} without its metadata: {exc}") from exc
    _trim(cache, keep=copy)
    return copy


def _remux(source: Path, target: Path) -> None:
    """Every audio and video packet of `source` into `target`, in the same container, with no tags:
    FFmpeg writes only the ones it is given (and its own encoder name)."""
    with open_container(source, container_format(source)) as inp:
        fmt = inp.format.name.split(",")[0]
        fmt = {"mov": "mp4" if target.suffix in (".mp4", ".m4a", ".m4v") else "mov"}.get(fmt, fmt)
        with av.open(str(target), "w", format=fmt) as out:
            streams = {}
            for stream in inp.streams:
                if stream.type in ("video", "audio"):
                    streams[stream.index] = out.add_stream_from_template(stream)
                    streams[stream.index].metadata.clear()
            for packet in inp.demux(*[inp.streams[i] for i in streams]):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def _trim(cache: Path, keep: Path) -> None:
    """The least recently served copies go until the cache is under CACHE_BYTES."""
    files = sorted((f for f in cache.iterdir() if f.is_file()), key=lambda f: f.stat().st_mtime)
    total = sum(f.stat().st_size for f in files)
    for f in files:
        if total <= CACHE_BYTES:
            return
        if f != keep:
            total -= f.stat().st_size
            f.unlink(missing_ok=True)
