"""Real photos: every one indexes; a copy that went through a chat app (cropped, scaled, recompressed) is
found by image search and grouped with its original by dedup."""

from __future__ import annotations

from pathlib import Path

from mmsearch.query.dedup import NEAR, find_duplicates
from mmsearch.query.request import Picture
from tests.real.conftest import TRUTH

NEAR_COPIES = TRUTH["photos"]["near_copies"]
FOUND_MIN = 20  # the bar, of the 31 photos chosen


def copy_of(real_index, rel: str) -> Path:
    return real_index.copies / (rel.replace("/", "__") + ".jpg")


def test_every_photo_indexes(real_index, corpus):
    items = real_index.items()
    photos = sorted(p for p in (corpus / "photos").rglob("*") if p.is_file())
    assert len(photos) == 224
    bad = [(p, items[str(p)].error) for p in photos if items[str(p)].status != "indexed"]
    assert not bad and all(items[str(p)].kind == "image" for p in photos), bad


def test_a_near_copy_finds_its_original_first(real_index, record_property):
    engine = real_index.engine
    found = []
    for rel in NEAR_COPIES:
        query = engine.picture(Picture(copy_of(real_index, rel).read_bytes())).image
        hits = [h for h in engine.search_image(query, k=3) if h.uri != str(copy_of(real_index, rel))]
        found.append(hits[0].uri == real_index.uri(rel))
    record_property("near_copies_found_first", sum(found))
    assert sum(found) >= FOUND_MIN, [rel for rel, ok in zip(NEAR_COPIES, found, strict=True) if not ok]


def test_dedup_groups_a_near_copy_with_its_original(real_index, record_property):
    groups = [g for g in find_duplicates(real_index.engine.store) if g.kind == NEAR]
    group_of = {m.uri: i for i, g in enumerate(groups) for m in g.members}
    together = [
        rel
        for rel in NEAR_COPIES
        if group_of.get(real_index.uri(rel), -1) == group_of.get(str(copy_of(real_index, rel)), -2)
    ]
    record_property("near_copies_grouped", len(together))
    assert len(together) >= FOUND_MIN, sorted(set(NEAR_COPIES) - set(together))
