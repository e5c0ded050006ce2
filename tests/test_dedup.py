"""Duplicate finding: byte copies as exact groups, re-saved and resized pictures as near groups, collapsing
near-identical hits, and export.

With the tiny random model, copies of a picture measured >= 0.998 alike and the three distinct noisy
images of `write_images` 0.75-0.83: a threshold of 0.95 has a wide margin on both sides.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.hits import Hit
from mmsearch.indexer import index_folder
from mmsearch.query.dedup import DuplicateGroup, Member, collapse, find_duplicates, groups_to_json, write_csv
from tests.conftest import write_images

THRESHOLD = 0.95


@pytest.fixture
def library(tmp_path: Path, engine, settings) -> Path:
    """Three distinct images, a byte copy of the first, a re-saved JPEG and a resized copy of the second."""
    folder = tmp_path / "photos"
    first, second, _ = write_images(folder, 3)
    shutil.copyfile(first, folder / "copy-of-first.jpg")
    picture = Image.open(second).convert("RGB")
    picture.save(folder / "resaved-second.jpg", "JPEG", quality=60)
    picture.resize((77, 58), Image.Resampling.LANCZOS).save(folder / "smaller-second.jpg", "JPEG", quality=90)
    report = index_folder(folder, engine.encoder, engine.store, settings.indexer)
    assert (report.indexed, report.failed) == (6, 0)
    return folder


def names(group: DuplicateGroup) -> list[str]:
    return [Path(m.uri).name for m in group.members]


def test_byte_copies_are_exact_and_altered_copies_near(library: Path, engine):
    groups = find_duplicates(engine.store, THRESHOLD)
    assert [(g.kind, names(g)) for g in groups] == [
        ("near", ["img-001.jpg", "resaved-second.jpg", "smaller-second.jpg"]),
        ("exact", ["copy-of-first.jpg", "img-000.jpg"]),
    ]
    near, exact = groups
    assert exact.min_similarity == 1.0
    assert THRESHOLD <= near.min_similarity < 1.0
    known = engine.store.catalog.known_files()
    assert all(m.item_id == known[m.uri].id for g in groups for m in g.members)


def test_distinct_images_stay_apart(library: Path, engine):
    index = engine.store.vectors["image"]
    ids = index.ids()
    vectors = index.vectors(ids)
    hits = engine.store.catalog.hits(ids)
    stems = [Path(hits[int(i)].uri).name for i in ids]
    sims = vectors @ vectors.T
    distinct = ["img-000.jpg", "img-001.jpg", "img-002.jpg"]
    rows = [stems.index(n) for n in distinct]
    between = sims[np.ix_(rows, rows)][~np.eye(3, dtype=bool)]
    assert between.max() < THRESHOLD - 0.05, between
    assert find_duplicates(engine.store, threshold=1.01) == [
        g for g in find_duplicates(engine.store, THRESHOLD) if g.kind == "exact"
    ]


def test_byte_copies_near_a_third_image_give_both_groups(library: Path, engine, settings):
    shutil.copyfile(library / "img-001.jpg", library / "copy-of-second.jpg")
    index_folder(library, engine.encoder, engine.store, settings.indexer)
    groups = find_duplicates(engine.store, THRESHOLD)
    assert [(g.kind, names(g)) for g in groups] == [
        ("near", ["copy-of-second.jpg", "img-001.jpg", "resaved-second.jpg", "smaller-second.jpg"]),
        ("exact", ["copy-of-first.jpg", "img-000.jpg"]),
        ("exact", ["copy-of-second.jpg", "img-001.jpg"]),
    ]


def hit(item_id: int) -> Hit:
    return Hit(item_id, item_id, f"/p/{item_id}.jpg", "image", 1.0 - item_id / 10, 0.5, "image")


def test_collapse_keeps_the_first_of_near_identical_hits():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16)).astype(np.float32)
    near_first = base[0] + 0.01 * rng.normal(size=16).astype(np.float32)
    vectors = np.stack([base[0], base[1], near_first, base[2], base[1]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = [hit(i) for i in range(5)]
    assert [h.item_id for h in collapse(hits, vectors, THRESHOLD)] == [0, 1, 3]
    assert collapse(hits, vectors, 1.01) == hits
    assert collapse([], np.zeros((0, 16), np.float32), THRESHOLD) == []


def test_collapse_on_real_search_results(library: Path, engine):
    hits = engine.search_text("a photo", k=10)
    assert len(hits) == 6
    vectors = engine.store.vectors_of("image", np.array([h.segment_id for h in hits]))
    kept = collapse(hits, vectors, THRESHOLD)
    groups = {"img-000.jpg": 0, "copy-of-first.jpg": 0, "img-002.jpg": 2}  # the rest are the second picture
    clusters = [groups.get(Path(h.uri).name, 1) for h in hits]
    first_of_each = [h for i, h in enumerate(hits) if clusters[i] not in clusters[:i]]
    assert kept == first_of_each and len(kept) == 3


def test_json_and_csv_round_trip(library: Path, engine, tmp_path: Path):
    groups = find_duplicates(engine.store, THRESHOLD)
    parsed = json.loads(groups_to_json(groups))
    again = [
        DuplicateGroup(g["kind"], tuple(Member(**m) for m in g["members"]), g["min_similarity"])
        for g in parsed
    ]
    assert again == groups

    path = tmp_path / "dupes.csv"
    write_csv(groups, path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["group", "kind", "min_similarity", "item_id", "uri"]
    expected = [(str(n), g.kind, m.item_id, m.uri) for n, g in enumerate(groups, 1) for m in g.members]
    assert [(r["group"], r["kind"], int(r["item_id"]), r["uri"]) for r in rows] == expected
    assert all(
        abs(float(r["min_similarity"]) - groups[int(r["group"]) - 1].min_similarity) < 1e-6 for r in rows
    )

    buffer = io.StringIO()
    write_csv(groups, buffer)
    assert buffer.getvalue() == path.read_bytes().decode()


def test_an_empty_index_has_no_groups(engine):
    assert find_duplicates(engine.store) == []


PHOTOS = Path(__file__).parent / "fixtures" / "photos"


def test_real_photos_group_without_chaining(tmp_path: Path, shapes_model: Path):
    """A half-size copy of a real photo groups with its original; six overlapping crops of another real
    photo, where neighbours are alike but the ends are not, never form one chained group: every pair of
    every near group is at least the threshold alike (union-find put all six crops in one group)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(PHOTOS / "cat.jpg", folder / "cat.jpg")
    with Image.open(PHOTOS / "cat.jpg") as im:
        im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS).save(folder / "cat-copy.jpg")
    with Image.open(PHOTOS / "coffee.jpg") as im:
        for i in range(6):  # windows 60% wide, moved 8% of the width each time
            x = int(i * 0.08 * im.width)
            im.crop((x, 0, x + int(0.6 * im.width), im.height)).save(folder / f"coffee-{i}.jpg", quality=90)
    settings = Settings(index_dir=tmp_path / "index", model={"name": str(shapes_model)})
    engine = Engine.open(settings, create=True)
    try:
        assert index_folder(folder, engine.encoder, engine.store, settings.indexer).indexed == 8
        groups = find_duplicates(engine.store, THRESHOLD)
        index = engine.store.vectors["image"]
        ids = index.ids()
        vectors = dict(zip(ids.tolist(), index.vectors(ids), strict=True))
        item_vector = {row.item_id: vectors[s] for s, row in engine.store.catalog.hits(ids).items()}
        by_name = {Path(u).name: k.id for u, k in engine.store.catalog.known_files().items()}
    finally:
        engine.close()

    def alike(a: str, b: str) -> float:
        return float(item_vector[by_name[a]] @ item_vector[by_name[b]])

    # The chain is there: neighbouring crops alike, the ends not (measured: 0.994, 0.957, 0.977; 0.857).
    assert min(alike("coffee-0.jpg", "coffee-1.jpg"), alike("coffee-2.jpg", "coffee-3.jpg")) >= THRESHOLD
    assert alike("coffee-1.jpg", "coffee-2.jpg") >= THRESHOLD > alike("coffee-0.jpg", "coffee-3.jpg") + 0.05
    near = [names(g) for g in groups if g.kind == "near"]
    assert ["cat-copy.jpg", "cat.jpg"] in near
    for group in (g for g in groups if g.kind == "near"):
        pairs = [alike(a, b) for a, b in itertools.combinations(names(group), 2)]
        assert min(pairs) >= THRESHOLD, (names(group), pairs)
        assert abs(group.min_similarity - min(pairs)) < 1e-5
    assert not any({"coffee-0.jpg", "coffee-3.jpg"} <= set(n) for n in near)
