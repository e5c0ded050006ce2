"""Camera RAW photos (search/encode/images.py, LibRaw through rawpy): developed for the model, their camera
read, a corrupt one recorded, served developed and without metadata. No camera's RAW file can be had here,
so the test writes a DNG (Adobe's open RAW format, as many cameras and phones save) by hand: a real photo as
an RGGB Bayer sensor records it, which LibRaw demosaics as it does a camera's."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, MediaError, Settings
from mmsearch.api.app import create_app
from mmsearch.encode.images import decode_image
from mmsearch.indexer import index_folder
from tests.conftest import serve

rawpy = pytest.importorskip("rawpy")
PHOTO = Path(__file__).with_name("fixtures") / "photos" / "cat.jpg"
SIZE = (320, 240)
FIELDS = {"taken_at": "2021-03-01T12:00:00", "camera_make": "Acme", "camera_model": "Raw One"}
RANDOM = {"name": "mmsearch-tiny", "random_weights": True, "device": "cpu"}
ASCII, SHORT, LONG, RATIONAL, SRATIONAL, BYTE = 2, 3, 4, 5, 10, 1


def bayer_dng(rgb: np.ndarray, make: str, model: str, taken: str = "2021:03:01 12:00:00") -> bytes:
    """`rgb` (8-bit sRGB) as the sensor of a camera with an RGGB Bayer filter and sRGB primaries would
    have recorded it (linear, 16-bit, one colour a pixel), saved as a DNG 1.4 with the camera's make and
    model: a little-endian TIFF, one strip, written field by field."""
    height, width, _ = rgb.shape
    s = rgb / 255.0
    linear = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)  # what the light was
    mosaic = np.empty((height, width))
    mosaic[0::2, 0::2], mosaic[0::2, 1::2] = linear[0::2, 0::2, 0], linear[0::2, 1::2, 1]  # R G
    mosaic[1::2, 0::2], mosaic[1::2, 1::2] = linear[1::2, 0::2, 1], linear[1::2, 1::2, 2]  # G B
    pixels = np.round(mosaic * 65535).astype("<u2").tobytes()
    xyz_to_srgb = [[32405, -15371, -4985], [-9693, 18760, 416], [557, -2040, 10572]]  # D65, x 10^4
    fields = {  # tag: (type, values)
        254: (LONG, [0]),  # the main image
        256: (LONG, [width]),
        257: (LONG, [height]),
        258: (SHORT, [16]),
        259: (SHORT, [1]),  # uncompressed
        262: (SHORT, [32803]),  # colour filter array
        271: (ASCII, make),
        272: (ASCII, model),
        273: (LONG, [0]),  # the strip's offset, set below
        274: (SHORT, [1]),
        277: (SHORT, [1]),
        278: (LONG, [height]),
        279: (LONG, [len(pixels)]),
        284: (SHORT, [1]),
        34665: (LONG, [0]),  # the EXIF IFD's offset, set below
        33421: (SHORT, [2, 2]),  # CFARepeatPatternDim
        33422: (BYTE, [0, 1, 1, 2]),  # CFAPattern: R G / G B
        50706: (BYTE, [1, 4, 0, 0]),  # DNGVersion
        50708: (ASCII, f"{make} {model}"),  # UniqueCameraModel
        50717: (LONG, [65535]),  # WhiteLevel
        50721: (SRATIONAL, [(v, 10000) for row in xyz_to_srgb for v in row]),  # ColorMatrix1
        50728: (RATIONAL, [(1, 1)] * 3),  # AsShotNeutral: grey is equal in R, G and B
        50778: (SHORT, [21]),  # CalibrationIlluminant1: D65
    }
    packed = {}
    for tag, (kind, values) in fields.items():
        if kind == ASCII:
            packed[tag] = (kind, len(values) + 1, values.encode() + b"\0")
        elif kind in (RATIONAL, SRATIONAL):
            code = "<II" if kind == RATIONAL else "<ii"
            packed[tag] = (kind, len(values), b"".join(struct.pack(code, *v) for v in values))
        else:
            code = {BYTE: "B", SHORT: "H", LONG: "I"}[kind]
            packed[tag] = (kind, len(values), struct.pack(f"<{len(values)}{code}", *values))
    table_end = 8 + 2 + 12 * len(packed) + 4
    spill = b""
    entries = []
    for tag in sorted(packed):
        kind, count, data = packed[tag]
        if len(data) <= 4:
            entries.append((tag, kind, count, data.ljust(4, b"\0")))
        else:
            entries.append((tag, kind, count, struct.pack("<I", table_end + len(spill))))
            spill += data + b"\0" * (len(data) % 2)
    exif_at = table_end + len(spill)  # an IFD of one field: DateTimeOriginal
    date = taken.encode() + b"\0"
    spill += struct.pack("<HHHII", 1, 36867, ASCII, len(date), exif_at + 18) + b"\0" * 4 + date
    strip = table_end + len(spill)
    offsets = {273: strip, 34665: exif_at}
    table = b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<I", offsets[tag]) if tag in offsets else value)
        for tag, kind, count, value in entries
    )
    return b"II*\0" + struct.pack("<IH", 8, len(entries)) + table + b"\0\0\0\0" + spill + pixels


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB").resize(SIZE))


def test_a_dng_is_developed_to_the_picture_it_holds_with_its_camera(source):
    got = decode_image(bayer_dng(source, "Acme", "Raw One"), 10**8, raw=True)
    assert (got.width, got.height) == SIZE and got.image.size == SIZE
    developed = np.asarray(got.image, np.float64).ravel()
    assert np.corrcoef(developed, source.ravel())[0, 1] > 0.98  # demosaiced; brightened by the histogram
    assert got.fields == FIELDS


def test_a_large_raw_is_developed_at_half_size_when_that_is_enough(source):
    big = np.asarray(Image.fromarray(source).resize((1280, 960)))
    got = decode_image(bayer_dng(big, "Acme", "Raw One"), 10**8, min_side=224, raw=True)
    assert (got.width, got.height) == (1280, 960) and got.image.size == (640, 480)


def test_without_rawpy_the_reason_says_what_to_install(source, monkeypatch):
    monkeypatch.setitem(sys.modules, "rawpy", None)  # as where the extra is not installed
    with pytest.raises(MediaError, match=r"mmsearch\[raw\]"):
        decode_image(bayer_dng(source, "Acme", "Raw One"), 10**8, raw=True)


def test_raw_photos_are_indexed_served_developed_and_a_corrupt_one_recorded(source, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.dng").write_bytes(bayer_dng(source, "Acme", "Raw One"))
    (folder / "broken.nef").write_bytes(b"II*\0" + bytes(range(256)) * 40)
    Image.fromarray(source).save(folder / "cat.jpg", quality=95)
    settings = Settings(index_dir=tmp_path / "index", model=RANDOM)
    engine = Engine.open(settings, create=True)
    try:
        report = index_folder(folder, engine.encoder, engine.store, settings.indexer)
        known = engine.store.catalog.known_files()
        dng = engine.item(known[str((folder / "cat.dng").resolve())].id)
        why = dict(engine.store.catalog.failures())
        alike = engine.search_image(Image.open(folder / "cat.jpg"), k=2)
        originals = settings.model_copy(
            update={"api": settings.api.model_copy(update={"serve_originals": True})}
        )
        with serve(create_app(settings, engine)) as url, serve(create_app(originals, engine)) as as_is:
            thumb = httpx.get(f"{url}/items/{dng.id}/thumbnail", timeout=60)
            media = httpx.get(f"{url}/items/{dng.id}/media", timeout=60)
            original = httpx.get(f"{as_is}/items/{dng.id}/media", timeout=60)
    finally:
        engine.close()
    assert (report.indexed, report.failed) == (2, 1)
    assert (dng.kind, dng.width, dng.height, dng.fields) == (
        "image",
        *SIZE,
        FIELDS,
    )
    assert "corrupt or unsupported camera RAW data" in why[str((folder / "broken.nef").resolve())]
    assert {Path(h.uri).name for h in alike} == {"cat.jpg", "cat.dng"} and alike[1].score > 0.95
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert media.status_code == 200 and media.headers["content-type"] == "image/jpeg"
    served = Image.open(io.BytesIO(media.content))
    assert served.size == SIZE and not served.getexif() and "Acme" not in media.text
    assert original.content == (folder / "cat.dng").read_bytes()
