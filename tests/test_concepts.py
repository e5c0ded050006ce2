"""Concepts taught by examples (search/learn/concepts.py, search/storage/concepts.py), feedback on hits
(Rocchio, Engine.moved) and spread hits (search/query/diverse.py), on held-out shapes indexed with the
trained shapes model: "pointy shapes" (stars, triangles, crosses), a concept no caption names."""

from __future__ import annotations

import asyncio
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mmsearch import (
    Concept,
    Engine,
    Filters,
    InvalidQueryError,
    NotFoundError,
    SearchRequest,
    Settings,
    Term,
)
from mmsearch.api.app import create_app
from mmsearch.api.cli import app as cli
from mmsearch.synth.shapes import generate
from tests.conftest import serve

POINTY = ("star", "triangle", "cross")


def shape(uri: str) -> str:
    return Path(uri).stem.split("-")[1]


def colour(uri: str) -> str:
    return Path(uri).stem.split("-")[0]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, shapes_model: Path):
    root = tmp_path_factory.mktemp("concepts")
    generate(root / "gallery", per_class=4, seed=2, fmt="jpg")
    settings = Settings(index_dir=root / "index", model={"name": str(shapes_model), "device": "cpu"})
    engine = Engine.open(settings, create=True)
    engine.index(root / "gallery")
    yield root, settings, engine
    engine.close()


def ids_of(engine: Engine) -> dict[str, int]:
    """File name -> item id."""
    return {Path(uri).name: known.id for uri, known in engine.store.catalog.known_files().items()}


def examples(engine: Engine, n: int = 3) -> tuple[list[int], list[int]]:
    """n pointy items and n others, as a user marks them."""
    ids = ids_of(engine)
    yes = [ids[f"{c}-{s}-0000.jpg"] for c, s in (("red", "star"), ("blue", "triangle"), ("green", "cross"))]
    no = [ids[f"{c}-{s}-0000.jpg"] for c, s in (("red", "circle"), ("blue", "square"), ("yellow", "circle"))]
    return yes[:n], no[:n]


def test_a_concept_taught_by_six_examples_tags_filters_and_finds_its_items(shapes):
    """Six marks (three pointy, three round) teach a concept no caption names: what it holds is pointy
    (precision at least 0.9; measured 1.0), a third of the 72 pointy shapes at least (measured 28: the
    probe is sure before it tags), looked for by itself its first 20 are pointy, and the tags say so."""
    _, _, engine = shapes
    yes, no = examples(engine)
    taught = engine.teach("pointy shapes", yes, no)
    assert (taught.name, taught.liked, taught.disliked) == ("pointy shapes", 3, 3)
    held = SearchRequest.words(
        "a shape", k=200, show_all=True, filters=Filters(where='concept = "pointy shapes"')
    )
    members = [h.uri for h in engine.search(held).hits]
    assert len(members) == taught.items
    pointy = sum(shape(u) in POINTY for u in members)
    assert pointy / len(members) >= 0.9 and pointy / 72 >= 1 / 3, (pointy, len(members))
    alone = engine.search(SearchRequest((Term(Concept("pointy shapes")),), k=20, show_all=True)).hits
    assert all(shape(h.uri) in POINTY for h in alone), [Path(h.uri).name for h in alone]
    assert ("pointy shapes", taught.items) in engine.facet("tag")
    label, score, source = engine.tags(yes[0])[0]
    assert (label, source) == ("pointy shapes", "concept") and score >= 0.5
    engine.concepts.forget("pointy shapes")


def test_teaching_more_examples_updates_the_concept_and_a_new_mark_wins(shapes):
    _, _, engine = shapes
    yes, no = examples(engine)
    engine.teach("pointy", yes[:1])
    assert engine.concepts.examples("pointy") == {yes[0]: True}
    more = engine.teach("pointy", yes[1:], no)
    assert (more.liked, more.disliked) == (3, 3)
    flipped = engine.teach("pointy", [], [yes[2]])  # marked again: now "not it"
    assert (flipped.liked, flipped.disliked) == (2, 4)
    assert yes[2] not in engine.concepts.members("pointy", [yes[2]])  # what the user says is kept
    engine.concepts.forget("pointy")
    assert engine.concepts.names() == []
    gone = SearchRequest.words("a shape", filters=Filters(where='concept = "pointy"'))
    assert engine.search(gone).hits == []


def test_new_files_are_scored_as_they_are_indexed(shapes):
    """Files indexed after teaching get the concept's tag in the writer's transaction: exactly those the
    concept is sure of, and they are pointy."""
    root, _, engine = shapes
    yes, no = examples(engine)
    engine.teach("pointy", yes, no)
    more = root / "gallery" / "later"
    generate(more, per_class=1, seed=5, fmt="jpg")
    try:
        engine.index(root / "gallery")
        later = {Path(u).name: k.id for u, k in engine.store.catalog.known_files().items() if "/later/" in u}
        held = engine.concepts.members("pointy", list(later.values()))
        pointy = {i for name, i in later.items() if shape(name) in POINTY}
        assert len(held & pointy) >= len(pointy) / 3 and len(held - pointy) <= 1, (held, pointy)
        classifier = engine.concepts.classifier("pointy")  # as teaching would have scored them
        sure = {i for i in later.values() if classifier.probability(engine.item_picture_vector(i)) >= 0.5}
        assert held == sure
    finally:
        shutil.rmtree(more)
        engine.index(root / "gallery", prune=True)
        engine.concepts.forget("pointy")


def test_the_next_items_to_label_are_the_least_sure_and_never_the_examples(shapes):
    _, _, engine = shapes
    yes, no = examples(engine, 1)
    engine.teach("pointy", yes, no)
    unsure = engine.to_label("pointy", 8)
    assert len(unsure) == 8 and not {i for i, _ in unsure} & {*yes, *no}
    distance = [abs(p - 0.5) for _, p in unsure]
    assert distance == sorted(distance)
    with pytest.raises(InvalidQueryError, match="n must be between 1 and 100"):
        engine.to_label("pointy", 0)
    engine.concepts.forget("pointy")


def test_teaching_and_using_concepts_fail_in_plain_words(shapes):
    _, _, engine = shapes
    yes, no = examples(engine, 1)
    with pytest.raises(InvalidQueryError, match="marked both"):
        engine.teach("pointy", yes, yes)
    with pytest.raises(InvalidQueryError, match="mark at least one item"):
        engine.teach("pointy", [], no)
    with pytest.raises(InvalidQueryError, match=r"items \[999999\] have no picture"):
        engine.teach("pointy", [999999])
    with pytest.raises(InvalidQueryError, match="1 to 256 characters"):
        engine.teach("  ", yes)
    with pytest.raises(NotFoundError, match="no concept 'nothing': none is taught yet"):
        engine.search(SearchRequest((Term(Concept("nothing")),)))
    with pytest.raises(NotFoundError, match="no concept 'nothing'"):
        engine.search(SearchRequest.words("a red star", boost="nothing"))
    with pytest.raises(InvalidQueryError, match="both liked and disliked"):
        SearchRequest.words("a red star", liked=(1,), disliked=(1,))


def test_feedback_moves_the_query_toward_the_liked_and_hides_the_disliked(shapes):
    """ "a red circle", then 👍 on two blue squares and 👎 on a red circle: the blue squares rise from
    outside the first 12 into them, and the disliked one is gone."""
    _, _, engine = shapes
    ids = ids_of(engine)
    liked = (ids["blue-square-0000.jpg"], ids["blue-square-0001.jpg"])
    disliked = (ids["red-circle-0000.jpg"],)

    def first(**feedback) -> list[str]:
        request = SearchRequest.words("a red circle", k=12, show_all=True, **feedback)
        return [Path(h.uri).name for h in engine.search(request).hits]

    before, after = first(), first(liked=liked, disliked=disliked)
    blue = [sum(n.startswith("blue") for n in names) for names in (before, after)]
    squares = [sum(n.startswith("blue-square") for n in names) for names in (before, after)]
    assert blue[1] >= blue[0] + 4 and squares == [0, 1], (before, after)
    assert "red-circle-0000.jpg" in before and "red-circle-0000.jpg" not in after


def test_a_boost_puts_the_concepts_items_first(shapes):
    """ "a red square" favouring pointy shapes: the pointy good matches first (a red triangle), then the
    other good ones (the red squares), then the weaker ones, pointy first again."""
    _, _, engine = shapes
    yes, no = examples(engine)
    engine.teach("pointy", yes, no)
    try:
        request = SearchRequest.words("a red square", k=8, show_all=True, boost="pointy")
        hits = engine.search(request).hits
        members = engine.concepts.members("pointy", [h.item_id for h in hits])
        order = [(h.weak, h.item_id not in members) for h in hits]
        assert order == sorted(order) and order[0] == (False, False), order
        assert Path(hits[0].uri).name.startswith("red-triangle")
        plain = engine.search(SearchRequest.words("a red square", k=8)).hits
        assert Path(plain[0].uri).name.startswith("red-square")
    finally:
        engine.concepts.forget("pointy")


def test_diverse_spreads_the_first_hits_at_a_small_cost_in_relevance(shapes):
    """Maximal marginal relevance over the stored vectors, on the 30 captions ("a red circle"): at 0.7
    the first 10 hold more kinds of picture (measured: 4.0 classes on average, 5.07 spread) while the
    class asked for keeps its place (nDCG@10 0.980 -> 0.955; at 0.5 it falls to 0.83: why spreading is
    asked for, not done by default)."""
    from mmsearch.evaluate.metrics import ndcg_at
    from mmsearch.synth.shapes import COLOURS, SHAPES, caption

    _, _, engine = shapes

    def measured(diverse: float | None) -> tuple[float, float]:
        classes, ndcg = [], []
        for c in COLOURS:
            for s in SHAPES:
                request = SearchRequest.words(caption(c, s), k=10, show_all=True, diverse=diverse)
                names = [Path(h.uri).stem.rsplit("-", 1)[0] for h in engine.search(request).hits]
                classes.append(len(set(names)))
                ndcg.append(ndcg_at([i + 1 for i, n in enumerate(names) if n == f"{c}-{s}"], 4, 10))
        return sum(classes) / len(classes), sum(ndcg) / len(ndcg)

    (plain_classes, plain_ndcg), (spread_classes, spread_ndcg) = measured(None), measured(0.7)
    assert spread_classes >= plain_classes + 0.5, (plain_classes, spread_classes)
    assert spread_ndcg >= plain_ndcg - 0.05, (plain_ndcg, spread_ndcg)
    with pytest.raises(InvalidQueryError, match="diverse is a weight from 0 to 1"):
        SearchRequest.words("x", diverse=1.5)


def test_concepts_over_http_the_cli_and_mcp(shapes):
    """Taught over HTTP (an admin write), listed and asked about at every door; a reader key may not
    teach; the CLI teaches and lists too."""
    mcp = pytest.importorskip("mcp")
    from mmsearch.api.mcp_server import build

    _, settings, engine = shapes
    yes, no = examples(engine)
    admin, reader = "a" * 32, "r" * 32
    keyed = settings.model_copy(
        update={"api": settings.api.model_copy(update={"admin_keys": [admin], "read_keys": [reader]})}
    )
    with serve(create_app(keyed, engine)) as url, httpx.Client(base_url=url, timeout=60) as client:
        body = {"liked": yes, "disliked": no}
        refused = client.put("/admin/concepts/pointy", json=body, headers={"x-api-key": reader})
        assert refused.status_code == 403
        taught = client.put("/admin/concepts/pointy", json=body, headers={"x-api-key": admin})
        assert taught.status_code == 200 and taught.json()["liked"] == 3
        listed = client.get("/concepts", headers={"x-api-key": reader}).json()
        assert [c["name"] for c in listed] == ["pointy"]
        unsure = client.get("/concepts/pointy/next", params={"n": 3}, headers={"x-api-key": reader})
        assert unsure.status_code == 200 and len(unsure.json()) == 3
        missing = client.get("/concepts/nothing/next", headers={"x-api-key": reader})
        assert missing.status_code == 404 and "no concept 'nothing'" in missing.json()["error"]
        bad = client.put("/admin/concepts/pointy", json={"liked": [999999]}, headers={"x-api-key": admin})
        assert bad.status_code == 400 and "no picture" in bad.json()["error"]
        wrong = client.put("/admin/concepts/pointy", json={"liked": [0]}, headers={"x-api-key": admin})
        assert wrong.status_code == 422
    run = CliRunner().invoke(cli, ["concept", "list", "-i", str(settings.index_dir)])
    assert run.exit_code == 0 and "pointy" in run.stdout
    run = CliRunner().invoke(
        cli, ["concept", "teach", "round", "--yes", str(no[0]), "-i", str(settings.index_dir)]
    )
    assert run.exit_code == 0 and "'round'" in run.output

    async def over_mcp(tool: str, arguments: dict, chosen: Settings):
        async with mcp.Client(build(engine, chosen)) as client:
            return await client.call_tool(tool, arguments)

    listed = asyncio.run(over_mcp("concepts", {}, settings))
    assert {c["name"] for c in json.loads(listed.content[0].text)} == {"pointy", "round"}
    asked = asyncio.run(over_mcp("concepts", {"name": "pointy", "n": 2}, settings))
    assert len(json.loads(asked.content[0].text)) == 2
    taught = asyncio.run(over_mcp("teach_concept", {"name": "round", "liked": [no[1]]}, keyed))
    assert not taught.is_error and json.loads(taught.content[0].text)["liked"] == 2
    for name in ("pointy", "round"):
        engine.concepts.forget(name)


def test_a_concept_taught_on_the_page_filters_boosts_and_tags_at_every_door(shapes, browser):
    """On the page: 👍 on two red stars, 👎 on two red circles, "Search again" sends them as feedback
    (the disliked gone), "Teach" saves them as a concept, whose chip and "Is this ...?" strip appear; a
    👍 there teaches it one more. Then the concept filters, boosts and tags over HTTP, the CLI and MCP.
    No 4xx and no console error on the way."""
    mcp = pytest.importorskip("mcp")
    from mmsearch.api.mcp_server import build

    _, settings, engine = shapes
    asked, refused, console = [], [], []
    with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=60) as client:
        page = browser.new_page()
        page.on("request", lambda r: asked.append(r.url))
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
        page.goto(url)

        def search(words: str) -> None:
            page.locator("#q").fill(words)
            page.locator("#q").press("Enter")
            page.wait_for_function("() => document.querySelector('#status').textContent.includes('result')")

        def ids_on_screen() -> list[int]:
            labels = page.locator("#results .marks button:first-child").evaluate_all(
                "bs => bs.map(b => b.getAttribute('aria-label'))"
            )
            return [int(label.rsplit(" ", 1)[1]) for label in labels]

        search("a red star")
        stars = ids_on_screen()[:2]
        for i in stars:
            page.get_by_role("button", name=f"Right: item {i}").click()
        search("a red circle")
        circles = ids_on_screen()[:2]
        for i in circles:
            page.get_by_role("button", name=f"Wrong: item {i}").click()
        assert page.locator("#marked").text_content() == "2 right, 2 wrong"
        page.get_by_role("button", name="Search again").click()
        page.wait_for_function("() => document.querySelector('#status').textContent.includes('result')")
        again = [u for u in asked if "/search?" in u][-1]
        assert all(f"liked={i}" in again for i in stars) and all(f"disliked={i}" in again for i in circles)
        assert not set(ids_on_screen()) & set(circles)
        page.get_by_label("Concept name").fill("pointy page")
        page.get_by_role("button", name="Teach").click()
        page.get_by_role("button", name="pointy page", exact=True).wait_for()
        page.wait_for_selector("#tolabel li")
        taught = engine.concepts.summary("pointy page")
        assert (taught.liked, taught.disliked) == (2, 2)
        page.locator("#tolabel li button").first.click()  # 👍: one more example
        page.wait_for_function(
            "() => document.querySelector('#status').textContent.includes('taught 3 right')"
        )
        assert refused == [] and console == []

        members = set(engine.concepts.members("pointy page", list(ids_of(engine).values())))
        assert len(members) >= 5 and set(stars) <= members  # measured: 9 and not set(circles) & members
        held = client.get(
            "/search", params={"q": "a shape", "where": 'concept = "pointy page"', "k": 200, "all": True}
        )
        assert {h["item_id"] for h in held.json()["hits"]} == members
        favoured = client.get("/search", params={"q": "a red square", "boost": "pointy page", "all": True})
        order = [(h["weak"], h["item_id"] not in members) for h in favoured.json()["hits"]]
        assert order == sorted(order) and any(not outside for _, outside in order), order
        tags = client.get("/facets", params={"field": "tag"}).json()["counts"]
        assert {"value": "pointy page", "count": len(members)} in tags
    run = CliRunner().invoke(
        cli,
        [
            "search",
            "a shape",
            "--where",
            'concept = "pointy page"',
            "-k",
            "200",
            "--all",
            "--json",
            "-i",
            str(settings.index_dir),
        ],
    )
    assert {h["item_id"] for h in json.loads(run.stdout)["hits"]} == members

    async def over_mcp():
        async with mcp.Client(build(engine, settings)) as c:
            return await c.call_tool(
                "search", {"text": "a red square", "boost": "pointy page", "show_all": True}
            )

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        found = thread.submit(asyncio.run, over_mcp()).result()
    hits = [json.loads(c.text) for c in found.content if c.type == "text"][1:]
    assert [(h["weak"], h["item_id"] not in members) for h in hits] == order
    engine.concepts.forget("pointy page")


def test_mmsearch_eval_measures_a_concept_against_the_words(shapes, tmp_path):
    """A labelled set's concept in `mmsearch eval`: with 10 examples the probe's average precision on the
    held-out items beats the words' ("a pointy shape"; measured 0.96 against 0.81 on the committed
    held-out set, docs/concepts.md), and more examples do better than one."""
    from mmsearch.evaluate import labels
    from mmsearch.evaluate.run import evaluate

    root, settings, engine = shapes
    pictures = (root / "gallery").glob("*.jpg")
    files = sorted(str(p.relative_to(root)) for p in pictures if shape(p.name) in POINTY)
    path = tmp_path / "set.json"
    concept = {"query": "a pointy shape", "items": files}
    path.write_text(json.dumps({"name": "pointy", "root": str(root), "concepts": {"pointy": concept}}))
    resolved = labels.tie_to_index(labels.load(path), root, settings)
    figures = evaluate(engine, resolved).summary()
    probe, words = (
        figures["concept AP, 10 examples, probe"],
        figures["concept AP, 10 examples, zero-shot text"],
    )
    assert probe >= words + 0.05 and probe >= 0.85, (probe, words)
    assert figures["concept AP, 20 examples, probe"] > figures["concept AP, 1 examples, probe"]
