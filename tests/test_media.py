"""Every awkward or hostile file is decoded correctly or refused with a reason; a run always completes."""

from pathlib import Path

import numpy as np
import pytest

from mmsearch.encode.images import decode_image
from mmsearch.errors import MediaError, MediaTooLargeError
from mmsearch.indexer import index_folder
from tests.media_cases import FAIL, OK, cases

LIMIT = 100_000_000
CASES = cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_or_refuse(name: str):
    data, expected = CASES[name]
    if expected == FAIL:
        with pytest.raises(MediaError) as info:
            decode_image(data, LIMIT)
        assert str(info.value)
    else:
        decoded = decode_image(data, LIMIT)
        assert decoded.image.mode == "RGB"
        assert decoded.image.size == (decoded.width, decoded.height)


def test_bombs_and_huge_images_are_refused_as_too_large():
    for name in ("bomb.png", "huge-dimensions.png"):
        with pytest.raises(MediaTooLargeError):
            decode_image(CASES[name][0], LIMIT)


def test_pixels_are_right_after_conversion():
    rotated = decode_image(CASES["exif-rotated.jpg"][0], LIMIT).image
    assert rotated.size == (40, 80)  # 80x40 stored, shown turned a quarter clockwise
    assert rotated.getpixel((20, 10))[0] > 200 and rotated.getpixel((20, 70))[2] > 200  # red on top
    transparent = decode_image(CASES["palette-transparent.png"][0], LIMIT).image
    assert transparent.getpixel((0, 0)) == (255, 255, 255) and transparent.getpixel((16, 16)) == (255, 0, 0)
    ramp = np.asarray(decode_image(CASES["sixteen-bit.png"][0], LIMIT).image)[0, :, 0]
    assert ramp[0] == 0 and ramp[-1] == 255 and np.all(np.diff(ramp.astype(int)) >= 0)
    cmyk = decode_image(CASES["cmyk.jpg"][0], LIMIT).image.getpixel((5, 5))
    assert cmyk[0] > 200 and cmyk[1] < 60 and cmyk[2] < 60  # CMYK (0, 255, 255, 0) is red


def test_jpeg_decodes_at_reduced_scale_but_keeps_full_size():
    from PIL import Image

    from tests.media_cases import _save

    data = _save(Image.new("RGB", (1600, 1200), "green"), "JPEG")
    decoded = decode_image(data, LIMIT, min_side=224)
    assert (decoded.width, decoded.height) == (1600, 1200)
    assert min(decoded.image.size) >= 224 and decoded.image.size[0] <= 400


def test_index_run_records_each_failure_and_completes(tmp_path: Path, engine, settings):
    folder = tmp_path / "media"
    folder.mkdir()
    for name, (data, _) in CASES.items():
        (folder / name).write_bytes(data)
    report = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    want_failed = {str(folder / n) for n, (_, outcome) in CASES.items() if outcome == FAIL}
    want_ok = {str(folder / n) for n, (_, outcome) in CASES.items() if outcome == OK}
    assert report.indexed == len(want_ok) and report.failed == len(want_failed)
    failures = dict(engine.store.catalog.failures())
    assert set(failures) == want_failed and all(failures.values())
    assert "empty" in failures[str(folder / "zero-byte.jpg")]
    assert "not an image" in failures[str(folder / "text-named.jpg")]
    assert (
        "truncated" in failures[str(folder / "truncated.png")]
        or "corrupt" in failures[str(folder / "truncated.png")]
    )
    hits = engine.search_image(decode_image(CASES["plain.png"][0], LIMIT).image, k=1)
    assert hits[0].uri == str(folder / "plain.png")
    rotated = next(h for h in engine.search_text("x", k=20) if h.uri.endswith("exif-rotated.jpg"))
    assert (rotated.width, rotated.height) == (40, 80)
