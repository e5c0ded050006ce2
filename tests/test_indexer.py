"""Incremental and prunable indexing; walking folders safely (resuming a killed run: test_kill_loop.py)."""

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from mmsearch import Engine
from mmsearch.errors import IndexStateError
from mmsearch.indexer import index_folder
from mmsearch.indexer.sources import walk
from tests.conftest import write_images


def test_second_run_embeds_nothing_and_changes_are_picked_up(tmp_path: Path, engine, settings):
    folder = tmp_path / "photos"
    paths = write_images(folder, 10)
    first = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert (first.indexed, first.skipped, first.failed) == (10, 0, 0)
    again = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert (again.indexed, again.skipped) == (0, 10)

    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same bytes
    Image.new("RGB", (96, 72), "purple").save(paths[1], "JPEG")  # new content
    item_id = engine.store.catalog.known_files()[str(paths[1])].id
    old_segment = list(engine.store.catalog.segment_ids(path_prefix=str(paths[1])))
    third = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert (third.indexed, third.skipped) == (1, 9)
    new_segment = list(engine.store.catalog.segment_ids(path_prefix=str(paths[1])))
    assert new_segment != old_segment and engine.store.catalog.known_files()[str(paths[1])].id == item_id
    _, vecs = next(engine.store.catalog.vectors(new_segment))
    purple = engine.encoder.encode_images([Image.open(paths[1]).convert("RGB")])
    assert float(vecs[0] @ purple[0]) > 0.999, "the stored vector is the new content's"
    assert len(engine.store) == 10 and old_segment[0] not in set(engine.store.vectors["image"].ids())

    paths[2].unlink()
    kept = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert kept.removed == 0 and engine.info()["indexed"] == 10
    pruned = index_folder(folder, engine.encoder, engine.store, settings.indexer, prune=True)
    assert pruned.removed == 1 and engine.info()["indexed"] == 9 and len(engine.store) == 9
    assert all(h.uri != str(paths[2]) for h in engine.search_text("anything", k=20))


def test_prune_only_touches_the_given_root(tmp_path: Path, engine, settings):
    a, b = write_images(tmp_path / "a", 3), write_images(tmp_path / "ab", 3, seed=1)
    index_folder(tmp_path / "a", engine.encoder, engine.store, settings.indexer)
    index_folder(tmp_path / "ab", engine.encoder, engine.store, settings.indexer)
    a[0].unlink()
    report = index_folder(tmp_path / "a", engine.encoder, engine.store, settings.indexer, prune=True)
    assert report.removed == 1 and engine.info()["indexed"] == 5
    assert {h.uri for h in engine.search_text("x", k=10)} == {str(p) for p in a[1:] + b}


def test_walk_globs_and_links_that_leave_the_root(tmp_path: Path):
    root = tmp_path / "root"
    write_images(root / "keep", 2)
    write_images(root / "skip", 2)
    (root / "notes.txt").write_text("not media")
    outside = write_images(tmp_path / "outside", 2)
    (root / "escape").symlink_to(tmp_path / "outside")
    (root / "escape.jpg").symlink_to(outside[0])
    (root / "inner").symlink_to(root / "keep")
    (root / "keep" / "loop").symlink_to(root)
    found = [f.path.relative_to(root).as_posix() for f in walk(root)]
    assert not any(p.startswith("escape") for p in found)
    assert found == ["keep/img-000.jpg", "keep/img-001.jpg", "skip/img-000.jpg", "skip/img-001.jpg"]
    only = [f.path.name for f in walk(root, include=["keep/*"])]
    assert only == ["img-000.jpg", "img-001.jpg"]
    assert all("skip" not in f.uri for f in walk(root, exclude=["skip/*"]))
    assert len(list(walk(root, exclude=["*.jpg"]))) == 0


def test_an_open_engine_sees_what_another_writer_commits(tmp_path: Path, settings):
    serving = Engine.open(settings, create=True)
    writer = Engine.open(settings)
    folder = tmp_path / "photos"
    paths = write_images(folder, 4)
    assert serving.search_text("x", k=10) == []
    index_folder(folder, writer.encoder, writer.store, settings.indexer)
    assert {h.uri for h in serving.search_text("x", k=10)} == {str(p) for p in paths}
    paths[0].unlink()
    index_folder(folder, writer.encoder, writer.store, settings.indexer, prune=True)
    assert len(serving.search_text("x", k=10)) == 3 and len(serving.store) == 3
    with writer.store.writer(), pytest.raises(IndexStateError, match="another process"):
        index_folder(folder, serving.encoder, serving.store, settings.indexer)
    serving.close()
    writer.close()


def test_a_corrupt_vector_cache_is_rebuilt_from_the_catalog(tmp_path: Path, engine, settings):
    paths = write_images(tmp_path / "photos", 5)
    index_folder(tmp_path / "photos", engine.encoder, engine.store, settings.indexer)
    engine.close()
    (settings.index_dir / "vectors-image.faiss").write_bytes(b"MMSVEC1\n" + b"\0" * 8 + b"garbage")
    reopened = Engine.open(settings)
    assert len(reopened.store) == 5
    top = reopened.search_image(Image.open(paths[3]), k=1)[0]
    assert top.uri == str(paths[3])
    reopened.close()
