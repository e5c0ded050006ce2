"""Awkward and hostile image files, generated on the spot: name -> (bytes, expected outcome)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

OK, FAIL = "indexed", "failed"


def _save(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def _jpeg() -> bytes:
    rng = np.random.default_rng(1)
    return _save(Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)), "JPEG")


def _png() -> bytes:
    rng = np.random.default_rng(2)
    return _save(Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)), "PNG")


def _exif_rotated() -> bytes:
    im = Image.new("RGB", (80, 40), "red")
    im.paste((0, 0, 255), (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    return _save(im, "JPEG", exif=exif.tobytes())


def _palette_transparent() -> bytes:
    im = Image.new("P", (32, 32), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (8, 8, 24, 24))
    return _save(im, "PNG", transparency=0)


def _sixteen_bit() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (32, 1))
    return _save(Image.fromarray(ramp), "PNG")  # uint16 -> mode I;16


def _animated_gif() -> bytes:
    frames = [Image.new("P", (40, 30), i) for i in range(3)]
    for f in frames:
        f.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _bomb() -> bytes:
    """225 megapixels that compress to a few kilobytes: Pillow itself refuses it."""
    return _save(Image.new("1", (15000, 15000)), "PNG")


def _huge() -> bytes:
    """108 megapixels: under Pillow's bomb limit, over mmsearch's default 100 MP limit."""
    return _save(Image.new("1", (12000, 9000)), "PNG")


def cases() -> dict[str, tuple[bytes, str]]:
    jpeg, png = _jpeg(), _png()
    return {
        "zero-byte.jpg": (b"", FAIL),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], FAIL),
        "truncated.png": (png[: len(png) // 2], FAIL),
        "text-named.jpg": (b"this is not an image, it only has the name of one\n" * 4, FAIL),
        "bomb.png": (_bomb(), FAIL),
        "huge-dimensions.png": (_huge(), FAIL),
        "cmyk.jpg": (_save(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"), OK),
        "sixteen-bit.png": (_sixteen_bit(), OK),
        "palette-transparent.png": (_palette_transparent(), OK),
        "animated.gif": (_animated_gif(), OK),
        "exif-rotated.jpg": (_exif_rotated(), OK),
        "plain.jpg": (jpeg, OK),
        "plain.png": (png, OK),
    }
