"""Decode images safely: only the formats we mean to read, bombs refused, orientation and modes fixed."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from mmsearch.defaults import MAX_FILE_BYTES, MAX_IMAGE_PIXELS
from mmsearch.encode.photo_fields import photo_fields
from mmsearch.errors import MediaError, MediaTooLargeError
from mmsearch.user_files import guarded, read_file

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PSD")  # PSD: the saved composite
ORIENTATION = 0x0112
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
RAW_EXTENSIONS = frozenset(  # camera RAW, read by LibRaw (rawpy, the `raw` extra)
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".pef"}
    | {".srw", ".3fr", ".iiq", ".rwl", ".x3f", ".erf", ".mef", ".mos", ".kdc", ".dcr"}
)


@functools.cache
def formats() -> tuple[str, ...]:
    """The formats decoded here: ours, AVIF where Pillow was built with it, HEIF where pillow-heif (the
    `heic` extra) is installed, whose opener is registered on first use."""
    extra = ("AVIF",) if features.check("avif") else ()
    try:
        import pillow_heif
    except ImportError:
        return FORMATS + extra
    pillow_heif.register_heif_opener()
    return (*FORMATS, *extra, "HEIF")


def _unreadable(data: bytes) -> str:
    """Why the bytes are not a picture we read: a HEIF one without pillow-heif says how to read it."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS and "HEIF" not in formats():
        return "a HEIC/HEIF picture: install pillow-heif to read it (pip install 'mmsearch[heic]')"
    return f"not an image in a supported format ({', '.join(formats())})"


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB
    width: int  # after EXIF orientation, at full resolution
    height: int
    fields: dict = field(default_factory=dict)  # when, with what, where it was taken (photo_fields.py)


def read_picture(
    path: Path,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side: int | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> DecodedImage:
    """A picture file read and decoded through the door (read_file's size limit, then decode_image; a
    camera RAW file by its extension): for pictures that are not being indexed, such as a query picture on
    disk or the file behind a hit. MediaError with the reason where it cannot be."""
    return decode_image(read_file(path, max_bytes), max_pixels, min_side, raw=is_raw(path))


def is_raw(path: str | Path) -> bool:
    """A camera RAW file, by its extension (most are TIFF inside, which Pillow would open as their small
    preview)."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def open_picture(data: bytes, max_pixels: int) -> Image.Image:
    """The picture in `data`, its header read and its size checked against `max_pixels`; its pixels are
    decoded later (`load`, `draft`). Every picture a user gives comes in here (decode_image, the GIF check,
    served copies): a file Pillow cannot make sense of is a MediaError that says why."""
    if not data:
        raise MediaError("empty file")
    with guarded("the picture"):
        try:
            im = Image.open(io.BytesIO(data), formats=formats())
        except UnidentifiedImageError as exc:
            raise MediaError(_unreadable(data)) from exc
        width, height = im.size
        if width * height > max_pixels:
            raise MediaTooLargeError(
                f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
            )
        return im


def is_animated_gif(data: bytes, max_pixels: int) -> bool:
    """Whether the bytes are a GIF of more than one frame (from its header). MediaError where they are not
    a GIF that can be read."""
    im = open_picture(data, max_pixels)
    with guarded("the GIF"):
        return im.format == "GIF" and bool(getattr(im, "is_animated", False))


def decode_image(
    data: bytes, max_pixels: int, min_side: int | None = None, raw: bool = False
) -> DecodedImage:
    """Decode bytes into an RGB image; `raw`: a camera RAW file (is_raw).

    `min_side` lets JPEG decode at a reduced scale (DCT scaling) while both sides stay >= min_side:
    the model never sees more pixels than that, and a 1600x1200 photo decodes about 8x faster.
    """
    if not data:
        raise MediaError("empty file")
    if raw:
        return _decode_raw(data, max_pixels, min_side)
    im = open_picture(data, max_pixels)
    width, height = im.size
    with guarded("the picture"):
        if min_side and im.format == "JPEG":
            im.draft("RGB", (min_side, min_side))
        try:
            im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise MediaError(f"corrupt or truncated image data: {exc}") from exc
        fields = photo_fields(im)
        im, turned = _orient(im)
        if turned:
            width, height = height, width
        return DecodedImage(to_rgb(im), width, height, fields)


def _decode_raw(data: bytes, max_pixels: int, min_side: int | None) -> DecodedImage:
    """A camera RAW photo developed by LibRaw with the camera's white balance, at half size where that
    still leaves both sides >= min_side (four times fewer pixels to demosaic); its EXIF read by Pillow
    where the format is TIFF inside (DNG, NEF, CR2, ARW, PEF, ...). LibRaw brightens by the histogram, as
    dcraw does: a RAW is exposed darker than the camera's JPEG."""
    try:
        import rawpy
    except ImportError:
        raise MediaError("a camera RAW photo: reading it needs rawpy (pip install 'mmsearch[raw]')") from None
    with guarded("the camera RAW photo"), _libraw_errors(rawpy), rawpy.imread(io.BytesIO(data)) as raw:
        sizes = raw.sizes
        width, height = (sizes.height, sizes.width) if sizes.flip in (5, 6) else (sizes.width, sizes.height)
        if width * height > max_pixels:
            raise MediaTooLargeError(
                f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
            )
        half = bool(min_side) and min(width, height) >= 2 * min_side
        rgb = raw.postprocess(use_camera_wb=True, half_size=half, output_bps=8)
    exif = Image.Exif()
    try:
        exif.load(data)  # the file's first IFD and the EXIF and GPS ones it points to, pixels unread
    except Exception:  # not TIFF inside (CR3, RAF, ...), or tags Pillow cannot parse: the picture stays
        exif = Image.Exif()
    return DecodedImage(Image.fromarray(rgb), width, height, photo_fields(exif))


@contextmanager
def _libraw_errors(rawpy) -> Iterator[None]:
    """LibRaw's own errors, said as such."""
    try:
        yield
    except rawpy.LibRawError as exc:
        why = f"{type(exc).__name__} {exc}".strip()
        raise MediaError(f"corrupt or unsupported camera RAW data: {why}") from exc


def _orient(im: Image.Image) -> tuple[Image.Image, bool]:
    """Apply the EXIF orientation; True when it turned the picture by 90 degrees."""
    try:
        orientation = im.getexif().get(ORIENTATION, 1)
        return ImageOps.exif_transpose(im) or im, orientation in (5, 6, 7, 8)
    except Exception:  # a broken EXIF block must not cost the picture
        return im, False


def to_rgb(im: Image.Image) -> Image.Image:
    """Any mode to RGB: transparency over white, 16-bit and float scaled to 8-bit, CMYK converted."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")
