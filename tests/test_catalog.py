"""The SQL catalog: versioned schema, batch writes, ids never reused, failures recorded."""

from pathlib import Path

import numpy as np
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from mmsearch.storage.catalog import MIGRATIONS, Catalog
from mmsearch.storage.schema import ItemRecord, SegmentRecord


def record(uri: str, vec: float = 1.0, error: str | None = None) -> ItemRecord:
    rec = ItemRecord(uri, "image", 10, 20, content_hash="h" + uri, width=4, height=3, error=error)
    if error is None:
        rec.segments = [SegmentRecord("image", vector=np.full(4, vec, np.float32))]
    return rec


def test_schema_is_versioned_by_alembic(tmp_path: Path):
    catalog = Catalog(f"sqlite:///{tmp_path}/c.sqlite")
    with catalog.engine.connect() as conn:
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert conn.execute(text("select version_num from alembic_version")).scalar() == head
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma synchronous")).scalar() == 2  # FULL
    assert {"items", "segments", "state", "faces", "people"} <= set(inspect(catalog.engine).get_table_names())
    Catalog(f"sqlite:///{tmp_path}/c.sqlite")  # reopening migrates nothing and fails nothing


def test_a_version_1_catalog_upgrades_in_place_keeping_its_rows(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/c.sqlite"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    old = create_engine(url)
    with old.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "insert into items (uri, kind, size, mtime_ns, status, indexed_at) "
                "values ('a', 'image', 1, 2, 'indexed', '2026-01-01')"
            )
        )
        conn.execute(text("insert into segments (item_id, space, vector) values (1, 'image', x'0000803f')"))
    old.dispose()
    catalog = Catalog(url)
    assert "thumbnail" in {c["name"] for c in inspect(catalog.engine).get_columns("segments")}
    assert catalog.segment_ids_by_space()["image"].tolist() == [1]
    assert catalog.thumbnail(1) is None and catalog.hits([1])[1].space == "image"


def test_write_replaces_segments_and_never_reuses_ids(tmp_path: Path):
    catalog = Catalog(f"sqlite:///{tmp_path}/c.sqlite")
    first = catalog.write([record("a"), record("b"), record("bad", error="corrupt")])
    assert list(first.added_ids) == [1, 2] and first.generation == 1
    second = catalog.write([record("b", vec=2.0)])
    assert list(second.removed_ids) == [2] and list(second.added_ids) == [3]
    ids, vecs = next(catalog.vectors())
    assert list(ids) == [1, 3] and vecs[1, 0] == 2.0
    assert catalog.counts() == {"indexed": 2, "failed": 1, "segments": 2, "faces": 0}
    assert catalog.failures() == [("bad", "corrupt")]
    gone = catalog.write([], removed_uris=["a"])
    assert list(gone.removed_ids) == [1]
    assert set(catalog.known_files()) == {"b", "bad"}
    assert catalog.generation() == 3


def test_filters_and_hits_only_see_indexed_items(tmp_path: Path):
    catalog = Catalog(f"sqlite:///{tmp_path}/c.sqlite")
    catalog.write([record("/data/x_1.jpg"), record("/data/x%1.jpg"), record("/other/y.jpg")])
    assert list(catalog.segment_ids(path_prefix="/data/x_")) == [1]  # LIKE wildcards are escaped
    assert list(catalog.segment_ids(kind="video")) == []
    assert set(catalog.hits([1, 2, 99])) == {1, 2}


def test_what_a_segment_lacks_is_sql_null(tmp_path: Path):
    """A picture has no words or lines read: NULL in their JSON columns, not the JSON text 'null', so
    `IS NULL` finds them (the catalog's own reads and anyone's SQL)."""
    catalog = Catalog(f"sqlite:///{tmp_path}/c.sqlite")
    said = SegmentRecord(
        "text", 1.0, 2.5, "hello", words=[[1.0, 2.5, "hello"]], vector=np.ones(4, np.float32)
    )
    rec = record("a")
    rec.segments.append(said)
    catalog.write([rec])
    with catalog.engine.connect() as conn:
        rows = conn.execute(text("select space, words, written, thumbnail from segments order by id")).all()
    assert rows == [("image", None, None, None), ("text", '[[1.0, 2.5, "hello"]]', None, None)]
