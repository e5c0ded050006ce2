"""The OCR reader's own rules (indexer/ocr.py): lines grouped in blocks as a reader groups them, and a
recognition model that is not there named in the error (the real signs: tests/real/test_written.py)."""

from __future__ import annotations

import pytest

from mmsearch.config import OcrSettings
from mmsearch.errors import ConfigError
from mmsearch.indexer import ocr


def line(text: str, x0: int, y0: int, x1: int, y1: int) -> ocr.Line:
    return ocr.Line(text, (x0, y0, x1, y1), 0.95)


def test_a_signs_heading_message_and_small_print_are_three_blocks():
    lines = [
        line("for penguins", 280, 420, 800, 500),  # out of order: blocks follow the page, not the list
        line("Table Mountain National Park", 225, 55, 845, 100),
        line("Warning", 370, 130, 705, 200),
        line("Please look under", 175, 215, 890, 290),
        line("your vehicles", 270, 320, 805, 400),
        line("Sponsored by", 870, 555, 1030, 585),
        line("Boulders", 900, 590, 1000, 620),
    ]
    texts = [" ".join(x.text for x in block) for block in ocr.blocks(lines)]
    assert texts == [
        "Table Mountain National Park",
        "Warning Please look under your vehicles for penguins",
        "Sponsored by Boulders",
    ]


def test_lines_side_by_side_or_far_apart_stay_apart():
    lines = [line("LEFT", 0, 0, 100, 30), line("RIGHT", 300, 35, 400, 65), line("BELOW", 0, 200, 100, 230)]
    assert [[x.text for x in b] for b in ocr.blocks(lines)] == [["LEFT"], ["RIGHT"], ["BELOW"]]


@pytest.mark.skipif(ocr.missing() is not None, reason=str(ocr.missing()))
def test_a_missing_recognition_model_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"ocr\.rec_model: no file at"):
        ocr.TextReader(OcrSettings(enabled=True, rec_model=str(tmp_path / "latin.onnx")))
