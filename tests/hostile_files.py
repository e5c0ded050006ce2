"""Broken and hostile files made on the spot, for every format mmsearch reads: a small valid file of each,
then mutants of it (zero bytes, cut short, bits flipped, sizes declared huge, the wrong extension,
polyglots). Deterministic: the same seed gives the same bytes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from mmsearch.encode.images import formats
from mmsearch.synth.media import shot_of, silence, write_audio, write_video

HUGE = 65535  # the side a bomb declares
FLIPS = 12  # bytes changed in a bit-flipped mutant


def _picture(seed: int = 0, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    pixels[: size[1] // 2, : size[0] // 2] = (220, 30, 30)
    return Image.fromarray(pixels)


def _saved(im: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def _animated_gif() -> bytes:
    frames = [_picture(i).quantize(16) for i in range(3)]
    return _saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)


def _heic() -> bytes | None:
    try:
        import pillow_heif
    except ImportError:
        return None
    pillow_heif.register_heif_opener()
    return _saved(_picture(3), "HEIF", quality=80)


def _dng() -> bytes | None:
    try:
        import rawpy  # noqa: F401
    except ImportError:
        return None
    from tests.test_raw import bayer_dng

    return bayer_dng(np.asarray(_picture(4, (64, 48))), "Acme", "Fuzz One")


def valid_files(tmp) -> dict[str, bytes]:
    """One small valid file of each format read: name -> bytes (`tmp`, a folder to write media in)."""
    picture = _picture()
    files = {
        "photo.jpg": _saved(picture, "JPEG", quality=85),
        "photo.png": _saved(picture, "PNG"),
        "photo.webp": _saved(picture, "WEBP", quality=80),
        "photo.gif": _saved(picture.quantize(32), "GIF"),
        "animated.gif": _animated_gif(),
        "photo.bmp": _saved(picture, "BMP"),
        "photo.tif": _saved(picture, "TIFF"),
    }
    if "AVIF" in formats():
        files["photo.avif"] = _saved(picture, "AVIF", quality=70)
    for name, data in (("photo.heic", _heic()), ("photo.dng", _dng())):
        if data is not None:
            files[name] = data
    shots = [shot_of("red", "circle", 0.6), shot_of("blue", "square", 0.6)]
    sound = 0.1 * np.sin(np.linspace(0, 440 * 2 * np.pi, 16000, dtype=np.float32))
    for name in ("clip.mp4", "clip.webm", "clip.mkv", "clip.avi"):
        files[name] = write_video(tmp / name, shots, audio=sound).read_bytes()
    for name in ("sound.wav", "sound.flac", "sound.ogg", "sound.m4a", "sound.mp3"):
        files[name] = write_audio(tmp / name, np.concatenate([sound, silence(0.5)]), 16000).read_bytes()
    return files


def _flipped(data: bytes, seed: int) -> bytes:
    """FLIPS bytes XORed with random values, anywhere in the file (headers included)."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for at in rng.integers(0, len(out), FLIPS):
        out[at] ^= int(rng.integers(1, 256))
    return bytes(out)


def _png_huge(data: bytes) -> bytes:
    """IHDR says HUGE x HUGE, its CRC fixed so the header itself is valid."""
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", HUGE, HUGE)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def _gif_huge(data: bytes) -> bytes:
    """The logical screen and every frame declare HUGE x HUGE."""
    out = bytearray(data)
    out[6:10] = struct.pack("<HH", HUGE, HUGE)
    at = out.find(b"\x2c", 13)  # the first image descriptor
    while at != -1:
        out[at + 5 : at + 9] = struct.pack("<HH", HUGE, HUGE)
        at = out.find(b"\x00\x21\xf9", at)  # the next frame's graphic control block
        at = out.find(b"\x2c", at + 8) if at != -1 else -1
    return bytes(out)


def bomb_gif() -> bytes:
    """A GIF whose screen and one frame declare 65535 x 65535 pixels, with a few bytes of pixel data:
    the file that stopped a whole index run (issue 32)."""
    head = b"GIF89a" + struct.pack("<HHBBB", HUGE, HUGE, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, HUGE, HUGE, 0)
    return head + frame + b"\x02\x02\x4c\x01\x00" + b"\x3b"


def _bmp_huge(data: bytes) -> bytes:
    return data[:18] + struct.pack("<ii", HUGE, HUGE) + data[26:]


def _jpeg_huge(data: bytes) -> bytes:
    """The frame header (SOF0) says HUGE x HUGE."""
    at = data.find(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", HUGE, HUGE) + data[at + 9 :]


def _tiff_huge(data: bytes) -> bytes:
    """ImageWidth and ImageLength (tags 256, 257) of the first IFD say HUGE (a little-endian TIFF: DNG
    too)."""
    out = bytearray(data)
    ifd = struct.unpack_from("<I", out, 4)[0]
    for i in range(struct.unpack_from("<H", out, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", out, entry)
        if tag in (256, 257) and kind == 4:  # LONG
            struct.pack_into("<I", out, entry + 8, HUGE)
        elif tag in (256, 257):  # SHORT, left-justified in the value field
            struct.pack_into("<HH", out, entry + 8, HUGE, 0)
    return bytes(out)


def _box_huge(data: bytes, box: bytes) -> bytes:
    """A container's data box or chunk (`mdat`, `data`) declares nearly 4 GiB."""
    at = data.find(box)
    if box == b"mdat":
        return data[: at - 4] + struct.pack(">I", 0xFFFFFFF0) + data[at:]
    return data[: at + 4] + struct.pack("<I", 0xFFFFFFF0) + data[at + 8 :]


HUGE_HEADERS = {
    ".png": _png_huge,
    ".gif": _gif_huge,
    ".bmp": _bmp_huge,
    ".jpg": _jpeg_huge,
    ".tif": _tiff_huge,
    ".dng": _tiff_huge,
    ".mp4": lambda d: _box_huge(d, b"mdat"),
    ".m4a": lambda d: _box_huge(d, b"mdat"),
    ".wav": lambda d: _box_huge(d, b"data"),
}


def mutants(files: dict[str, bytes]) -> dict[str, bytes]:
    """Every valid file's mutants, named `<stem>.<how>.<ext>`, and files under the wrong extension."""
    out = {}
    for n, (name, data) in enumerate(sorted(files.items())):
        stem, ext = name.rsplit(".", 1)
        out[f"{stem}.empty.{ext}"] = b""
        out[f"{stem}.half.{ext}"] = data[: len(data) // 2]
        out[f"{stem}.head.{ext}"] = data[:24]
        for seed in range(3):
            out[f"{stem}.flip{seed}.{ext}"] = _flipped(data, 1000 * n + seed)
        huge = HUGE_HEADERS.get(f".{ext}")
        if huge is not None:
            out[f"{stem}.huge.{ext}"] = huge(data)
    jpg, mp4, wav, png = files["photo.jpg"], files["clip.mp4"], files["sound.wav"], files["photo.png"]
    out |= {
        "bomb.gif": bomb_gif(),
        "jpeg-named.mp4": jpg,
        "mp4-named.jpg": mp4,
        "wav-named.png": wav,
        "png-named.wav": png,
        "gif-named.mkv": files["animated.gif"],
        "polyglot.jpg": jpg + mp4,
        "polyglot.mp4": mp4 + jpg,
        "text-named.webp": b"RIFF\x10\x00\x00\x00WEBPVP8 not really" * 3,
    }
    return out
