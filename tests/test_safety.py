"""Safe search (search/encode/safety.py): NudeNet's real detector at index time, flagging items by a
setting's classes, the flag a field, flagged items left out of searches and blurred in thumbnails unless
a caller asks, the same at every door. No explicit picture belongs in a test suite: the classes here are
the detector's faces (FACE_MALE, FACE_FEMALE), so real portraits are what gets flagged, through the same
code the explicit classes go through."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmsearch import ConfigError, Engine, SearchRequest, Settings
from mmsearch.encode import quality
from mmsearch.synth.shapes import generate
from tests.conftest import serve

pytest.importorskip("nudenet")
FACES = Path(__file__).resolve().parents[1] / ".cache" / "real" / "faces"  # make real-data
PORTRAITS = ("obama.jpg", "obama2.jpg", "biden.jpg")
SHOWN_OBAMA = """() => {
  const more = document.querySelector("#more");
  if (!more.hidden) more.click();
  return [...document.querySelectorAll("#results li .name")].some((n) => n.textContent.startsWith("obama"));
}"""


@pytest.fixture(scope="module")
def flagged(tmp_path_factory, shapes_model: Path):
    root = tmp_path_factory.mktemp("safety")
    generate(root / "shapes", per_class=1, seed=4, fmt="jpg")
    (root / "people").mkdir()
    for name in PORTRAITS:
        shutil.copy(FACES / name, root / "people")
    safety = {"enabled": True, "classes": ["FACE_MALE", "FACE_FEMALE"]}
    settings = Settings(index_dir=root / "index", model={"name": str(shapes_model)}, safety=safety)
    engine = Engine.open(settings, create=True)
    engine.index(root)
    yield root, settings, engine
    engine.close()


def names(hits) -> set[str]:
    return {Path(h["uri"] if isinstance(h, dict) else h.uri).name for h in hits}


def test_flagged_items_are_a_field_and_left_out_unless_asked(flagged):
    _, _, engine = flagged
    assert dict(engine.facet("explicit")) == {1.0: 3, 0.0: 30}
    every = SearchRequest.words("a photo", k=100, show_all=True, safe=False)
    assert set(PORTRAITS) <= names(engine.search(every).hits)
    safe = engine.search(SearchRequest.words("a photo", k=100, show_all=True)).hits
    assert len(safe) == 30 and not set(PORTRAITS) & names(safe)
    only = SearchRequest.words("a photo", k=100, show_all=True, safe=False, filters=_where("explicit = true"))
    assert names(engine.search(only).hits) == set(PORTRAITS)


def _where(expression: str):
    from mmsearch import Filters

    return Filters(where=expression)


def test_an_unknown_class_is_refused():
    from mmsearch.encode.safety import ExplicitCheck

    with pytest.raises(ConfigError, match="unknown \\['NOPE'\\]"):
        ExplicitCheck(["NOPE"])


def test_every_door_leaves_them_out_and_blurs_their_thumbnails(flagged):
    mcp = pytest.importorskip("mcp")
    from mmsearch.api.app import create_app
    from mmsearch.api.cli import app as cli
    from mmsearch.api.mcp_server import build
    from mmsearch.query import quick

    _, settings, engine = flagged
    expected = {
        safe: names(engine.search(SearchRequest.words("a photo", k=40, safe=safe, show_all=True)).hits)
        for safe in (True, False)
    }
    with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=60) as client:
        for safe in (True, False):
            found = client.get("/search", params={"q": "a photo", "k": 40, "all": True, "safe": safe}).json()
            assert names(found["hits"]) == expected[safe]
            body = {"terms": [{"text": "a photo"}], "k": 40, "all": True, "safe": safe}
            assert names(client.post("/search", json=body).json()["hits"]) == expected[safe]
        portrait = next(
            h
            for h in engine.search(SearchRequest.words("a photo", k=40, safe=False, show_all=True)).hits
            if Path(h.uri).name in PORTRAITS
        )
        veiled = client.get(f"/items/{portrait.item_id}/thumbnail").content
        bare = client.get(f"/items/{portrait.item_id}/thumbnail", params={"safe": False}).content
        sharp = [quality.look(Image.open(io.BytesIO(jpeg)))["sharpness"] for jpeg in (veiled, bare)]
        assert sharp[0] < sharp[1] / 20, sharp  # blurred past telling
        shape = next(h for h in engine.search(SearchRequest.words("a photo", k=40, show_all=True)).hits)
        plain = [
            client.get(f"/items/{shape.item_id}/thumbnail", params={"safe": s}).content for s in (True, False)
        ]
        assert plain[0] == plain[1]
    for safe in (True, False):
        args = ["search", "a photo", "-k", "40", "--all", "--json", "-i", str(settings.index_dir)]
        run = CliRunner().invoke(cli, args + ([] if safe else ["--unsafe"]))
        assert names(json.loads(run.stdout)["hits"]) == expected[safe]

        async def over_mcp(safe: bool):
            async with mcp.Client(build(engine, settings)) as c:
                return await c.call_tool(
                    "search", {"text": "a photo", "k": 40, "show_all": True, "safe": safe}
                )

        texts = [json.loads(c.text) for c in asyncio.run(over_mcp(safe)).content if c.type == "text"]
        assert names(texts[1:]) == expected[safe]
    assert quick.search(quick.Query("a photo", 40, settings.index_dir)) is None  # the full way decides


def test_the_page_leaves_them_out_until_safe_search_is_turned_off(flagged, browser):
    """The page's Safe search box: on, no portrait among the results; off, the search runs again with
    them, their thumbnails asked for unblurred (safe=false); no 4xx, no console error."""
    from mmsearch.api.app import create_app

    _, settings, engine = flagged
    with serve(create_app(settings, engine)) as url:
        page = browser.new_page()
        refused, console = [], []
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
        page.goto(url)
        page.locator("#q").fill("a photo")
        page.locator("#q").press("Enter")
        page.wait_for_selector("#results li")

        def shown() -> set[str]:
            """Every result's file name, the weaker matches shown too."""
            if page.locator("#more").is_visible():
                page.locator("#more").click()
            return {name.split(" ")[0] for name in page.locator("#results li .name").all_inner_texts()}

        assert shown() and not set(PORTRAITS) & shown()
        with page.expect_response(lambda r: "/search?" in r.url and "safe=false" in r.url):
            page.get_by_label("Safe search").uncheck()
        page.wait_for_function(SHOWN_OBAMA)  # the new results, their weaker matches shown
        assert set(PORTRAITS) <= shown()
        pictures = page.locator("#results li img").evaluate_all(
            "imgs => imgs.map(i => i.getAttribute('src'))"
        )
        assert all(src.endswith("safe=false") for src in pictures)
        assert refused == [] and console == []


def test_answers_never_cite_what_safe_search_flagged(flagged):
    """An answer's evidence is a search (Engine.search): the flagged portraits are never among it."""
    from mmsearch.answer.answerer import Answerer
    from mmsearch.config import AnswerSettings

    _, _, engine = flagged
    answerer = Answerer(engine, AnswerSettings(min_relevance=-1.0, max_evidence=40))
    unsafe = SearchRequest.words("a photo of a man", k=40, show_all=True, safe=False)
    assert set(PORTRAITS) <= names(engine.search(unsafe).hits)  # they would be found
    cited = {Path(e.hit.uri).name for e in answerer.evidence("a photo of a man")}
    assert cited and not set(PORTRAITS) & cited
