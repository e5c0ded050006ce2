"""The OCR reader's own rules (indexer/ocr.py): lines grouped in blocks as a reader groups them, and a
recognition model that is not there named in the error (the real signs: tests/real/test_written.py)."""

from __future__ import annotations

import pytest

from mmsearch import Engine, Settings
from mmsearch.config import OcrSettings
from mmsearch.errors import ConfigError
from mmsearch.indexer import index_folder, ocr
from mmsearch.synth.media import sign_of, write_video


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


@pytest.mark.skipif(ocr.missing() is not None, reason=str(ocr.missing()))
def test_text_on_screen_is_found_while_it_is_shown(tmp_path, shapes_model):
    """A video of title cards: each card's words find the moment it is on screen, to the frame; words that
    stay on screen across a cut (a new background) are one moment, not two; a misread look-alike (EX1T) is
    found by the word meant."""
    media = tmp_path / "media"
    media.mkdir()
    write_video(
        media / "signs.mp4",
        [
            sign_of("", "steelblue", 4.0),
            sign_of("HARBOUR CLOSED", "white", 4.0),
            sign_of("PLATFORM NINE", "gold", 2.0),
            sign_of("PLATFORM NINE", "skyblue", 2.0),
            sign_of("EX1T", "white", 2.0),  # a look-alike, as a recogniser misreads EXIT
        ],
    )
    settings = Settings(
        index_dir=tmp_path / "index",
        model={"name": str(shapes_model), "device": "cpu"},
        speech={"enabled": False},
        ocr={"enabled": True},
    )
    engine = Engine.open(settings, create=True)
    try:
        index_folder(
            media, engine.encoder, engine.store, settings.indexer, video=settings.video, written=settings.ocr
        )
        item = engine.store.catalog.known_files()[str((media / "signs.mp4").resolve())].id
        scenes = len(engine.store.catalog.item_segment_ids(item, "image"))
        read = len(engine.store.catalog.item_segment_ids(item, "text"))
        found = {q: engine.search_text(q, k=1)[0] for q in ("harbour closed", "platform nine", "exit")}
        catalog = engine.store.catalog
        by_words = {q: catalog.keyword_search(q, 5) for q in ("exit", "ex1t", "platform", "open")}
    finally:
        engine.close()
    assert found["harbour closed"].space == "text"
    assert (found["harbour closed"].t_start, found["harbour closed"].t_end) == (4.0, 8.0)
    nine = found["platform nine"]
    assert (nine.space, nine.text, nine.t_start, nine.t_end) == ("text", "PLATFORM NINE", 8.0, 12.0)
    assert nine.has_thumbnail and nine.boxes
    assert all(0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360 for x0, y0, x1, y1 in nine.boxes)
    exit_ = found["exit"]
    assert (exit_.space, exit_.text, exit_.t_start, exit_.t_end) == ("text", "EX1T", 12.0, 14.0)
    assert by_words == {"exit": [item], "ex1t": [item], "platform": [item], "open": []}  # full text forgives
    assert (scenes, read) == (5, 3)  # five shots; three texts, the second shown over two of them


def test_look_alikes_are_repaired_only_where_the_word_says_which_was_meant():
    cases = {
        "C0FFEE": "COFFEE",
        "c0ffee": "coffee",
        "EX1T 2O23": "EXIT 2023",
        "M0DEL": "MODEL",
        # Not sure enough: left as read.
        "A1": "A1",
        "1O": "1O",
        "COVID19": "COVID19",
        "H2O": "H2O",
        "SOS BOSS": "SOS BOSS",
    }
    assert {text: ocr.repaired(text) for text in cases} == cases
    assert ocr.key("PLATFORM NINE") == ocr.key("PLATFORMNINE") == ocr.key("platform n1ne")
