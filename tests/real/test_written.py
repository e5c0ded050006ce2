"""Text written in real photos (indexer/ocr.py): read at index time, found by its words through the command
line and HTTP, each line's box where the eye puts it (data/real/truth.json, "written"); text turned by 90
degrees is read; a photo without text stores none; a corrupt picture is recorded and the run goes on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.api.app import create_app
from mmsearch.evaluate import labels
from mmsearch.indexer import ocr
from tests.conftest import serve
from tests.real.conftest import TRUTH

pytestmark = pytest.mark.skipif(ocr.missing() is not None, reason=str(ocr.missing()))
WRITTEN = TRUTH["written"]
IOU_MIN = 0.5
TURNED = "castle-turned.png"
CORRUPT = "broken.png"


@dataclass
class Indexed:
    folder: Path
    settings: Settings
    engine: Engine
    indexed: str  # what `mmsearch index` printed

    def uri(self, rel: str) -> str:
        return str((self.folder / Path(rel).name).resolve())


def name(rel: str) -> str:
    return Path(rel).name


@pytest.fixture(scope="module")
def written(corpus, shapes_model, tmp_path_factory) -> Indexed:
    """The labelled photos, one turned by 90 degrees and a corrupt one, indexed by `mmsearch index --ocr`."""
    root = tmp_path_factory.mktemp("written")
    folder = root / "photos"
    folder.mkdir()
    for rel in [*WRITTEN["photos"], *WRITTEN["none"]]:
        shutil.copy(corpus / rel, folder / name(rel))
    Image.open(corpus / "photos/mvtb/castle.png").rotate(90, expand=True).save(folder / TURNED)
    (folder / CORRUPT).write_bytes((corpus / "photos/mvtb/castle.png").read_bytes()[:2000])
    index_dir = root / "index"
    run = mmsearch("index", str(folder), "-i", str(index_dir), "--model", str(shapes_model), "--ocr")
    assert run.returncode == 0, run.stderr
    settings = Settings(index_dir=index_dir, model={"name": str(shapes_model), "device": "cpu"})
    engine = Engine.open(settings)
    yield Indexed(folder, settings, engine, run.stdout)
    engine.close()


def mmsearch(*args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("MMSEARCH_")}
    code = "import sys\nfrom mmsearch.api.launch import main\nsys.argv = ['mmsearch', *sys.argv[1:]]\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**clean, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
        timeout=600,
    )


def iou(a: list[float], b: list[float]) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def lines_of(written: Indexed, uri: str) -> list[list]:
    """Every line read in a file: [x0, y0, x1, y1, text, score]."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from mmsearch.storage.schema import Item, Segment

    q = select(Segment.written).join(Item, Item.id == Segment.item_id)
    q = q.where(Item.uri == uri, Segment.written.is_not(None))
    with Session(written.engine.store.catalog.engine) as s:
        return [line for rows in s.scalars(q) for line in rows]


def test_each_labelled_line_is_read_where_it_is(written):
    for rel, truth in WRITTEN["photos"].items():
        read = lines_of(written, written.uri(rel))
        for text, box in truth["lines"].items():
            same = [line for line in read if line[4].lower() == text.lower()]
            assert same, (rel, text, [line[4] for line in read])
            assert iou(same[0][:4], box) >= IOU_MIN, (rel, text, same[0][:4], box)
            assert 0.8 <= same[0][5] <= 1.0


def test_a_sign_is_found_by_its_words_from_the_command_line(written):
    for rel, truth in WRITTEN["photos"].items():
        run = mmsearch("search", truth["query"], "-k", "1", "--json", "-i", str(written.settings.index_dir))
        assert run.returncode == 0, run.stderr
        hits = json.loads(run.stdout)["hits"]
        assert hits and hits[0]["uri"] == written.uri(rel), (truth["query"], hits)
    table = mmsearch(
        "search", "please look under your vehicles", "-k", "1", "-i", str(written.settings.index_dir)
    )
    assert 'written: "' in table.stdout and "penguins.png" in table.stdout, table.stdout


def test_a_sign_is_found_by_its_words_over_http(written):
    rel, truth = next(iter(WRITTEN["photos"].items()))
    with serve(create_app(written.settings, written.engine)) as url:
        got = httpx.get(f"{url}/search", params={"q": truth["query"], "k": 1}, timeout=60)
        hybrid = httpx.get(f"{url}/search", params={"q": "penguins", "k": 3, "hybrid": True}, timeout=60)
    assert got.status_code == 200, got.text
    hit = got.json()["hits"][0]
    assert hit["uri"] == written.uri(rel) and "penguins" in hit["text"].lower()
    for text, box in truth["lines"].items():  # each labelled line of the block is outlined where it is
        assert max(iou(b, box) for b in hit["boxes"]) >= IOU_MIN, (text, hit["boxes"])
    assert written.uri(rel) in [h["uri"] for h in hybrid.json()["hits"]], hybrid.text


def test_text_turned_by_90_degrees_is_read(written):
    read = {line[4].lower() for line in lines_of(written, written.uri(TURNED))}
    assert {"tourist", "castle"} <= read, read


def test_a_photo_without_text_stores_none(written):
    for rel in WRITTEN["none"]:
        assert lines_of(written, written.uri(rel)) == []
        segments = written.engine.store.catalog.item_segment_ids(
            written.engine.store.catalog.known_files()[written.uri(rel)].id, "text"
        )
        assert len(segments) == 0


def test_a_corrupt_picture_is_recorded_and_the_run_goes_on(written):
    assert "failed 1" in written.indexed
    known = written.engine.store.catalog.known_files()
    assert known[written.uri(CORRUPT)].status == "failed"
    assert (
        sum(k.status == "indexed" for k in known.values())
        == len(WRITTEN["photos"]) + len(WRITTEN["none"]) + 1
    )


def test_a_sign_is_found_by_its_words_on_the_web_page_with_its_lines_outlined(written, browser):
    rel, truth = next(iter(WRITTEN["photos"].items()))
    with serve(create_app(written.settings, written.engine)) as url:
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(url)
        page.fill("#q", "penguins")
        page.press("#q", "Enter")
        page.wait_for_selector("#results li")
        first = page.locator("#results li").first
        assert first.locator(".name").inner_text() == name(rel)
        assert first.locator(".badge").inner_text() == "written"
        assert "penguins" in first.locator(".said").inner_text().lower()
        first.locator("img").evaluate("img => img.decode()")
        picture = first.locator("img").bounding_box()
        outlined = [r.bounding_box() for r in first.locator("svg.boxes rect").all()]
    # Where each labelled line falls on the thumbnail, cropped to fill its card as the picture is.
    width, height = Image.open(written.folder / name(rel)).size
    scale = max(picture["width"] / width, picture["height"] / height)
    left = picture["x"] + (picture["width"] - width * scale) / 2
    top = picture["y"] + (picture["height"] - height * scale) / 2
    for text, (x0, y0, x1, y1) in truth["lines"].items():
        want = [left + x0 * scale, top + y0 * scale, left + x1 * scale, top + y1 * scale]
        drawn = [[b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]] for b in outlined]
        assert max(iou(d, want) for d in drawn) >= IOU_MIN, (text, want, drawn)


def test_small_print_is_read_when_small_pictures_are_scaled_up(corpus):
    """board.jpg (640x480) carries FOR HOME OR OFFICE USE in letters 10 pixels high, top left: read once
    the picture is scaled up to max_side, its box given back in the file's own pixels."""
    image = Image.open(corpus / "photos/opencv/board.jpg").convert("RGB")
    reader = ocr.TextReader(Settings().ocr.model_copy(update={"enabled": True, "upscale": True}))
    office = [line for line in reader.read(image, *image.size) if "office" in ocr.key(line.text)]
    assert office, reader.read(image, *image.size)
    assert iou(office[0].box, [70, 37, 238, 52]) >= IOU_MIN, office[0].box  # the box the eye draws


def test_the_labelled_set_of_written_words_names_real_photos(corpus):
    """data/eval/real-written.json (docs/ocr.md's recall) loads, and every file it names is in the corpus."""
    path = Path(__file__).parents[2] / "data" / "eval" / "real-written.json"
    labelled = labels.load(path)
    root = labels.root_of(labelled, path, None)
    named = {rel for query in labelled.queries for rel in query.relevant}
    assert len(labelled.queries) == 23 and all((root / rel).is_file() for rel in named), named
