"""A real index grown to a benchmark's size: a copy of it whose indexed items repeat under new paths
(`copy-00001/...`), each with its segments, stored vectors, transcripts and word times, until it holds
`items` items. Searching costs what the number of vectors and rows makes it cost, whatever they hold,
so a few hundred real files stand in for ten thousand without encoding ten thousand.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from mmsearch.config import Settings
from mmsearch.hits import INDEXED
from mmsearch.storage.layout import read_manifest
from mmsearch.storage.schema import Item, ItemRecord, Segment, SegmentRecord
from mmsearch.storage.store import Store

BATCH = 500  # items per committed batch
COPIED = (
    "space",
    "t_start",
    "t_end",
    "text",
    "thumbnail",
    "words",
    "written",
)  # a segment, but its id and vector


def grown(source: Path, target: Path, items: int) -> Path:
    """`source` copied to `target` and grown to `items` indexed items; the copy's path."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    settings = Settings(index_dir=target)
    store = Store.open(settings, read_manifest(target)["model"])
    try:
        originals = _records(store)
        if not originals:
            raise ValueError(f"the index at {source} holds no indexed item to repeat")
        have, n = len(originals), 0
        while have < items:
            n += 1
            batch = [_copy(r, n) for r in originals[: min(BATCH, items - have)]]
            store.write(batch)
            have += len(batch)
        store.save()
    finally:
        store.close()
    return target


def _records(store: Store) -> list[ItemRecord]:
    with Session(store.catalog.engine) as s:
        items = s.scalars(select(Item).where(Item.status == INDEXED).order_by(Item.id)).all()
        segments: dict[int, list[Segment]] = {}
        for seg in s.scalars(select(Segment).order_by(Segment.id)):
            segments.setdefault(seg.item_id, []).append(seg)
        return [
            ItemRecord(
                item.uri,
                item.kind,
                item.size,
                item.mtime_ns,
                item.content_hash,
                item.width,
                item.height,
                meta=item.meta,
                fields=item.fields,
                segments=[
                    SegmentRecord(
                        **{k: getattr(seg, k) for k in COPIED}, vector=np.frombuffer(seg.vector, np.float32)
                    )
                    for seg in segments.get(item.id, [])
                ],
            )
            for item in items
        ]


def _copy(record: ItemRecord, n: int) -> ItemRecord:
    path = Path(record.uri)
    uri = str(path.parent / f"copy-{n:05d}" / path.name)
    return replace(record, uri=uri)
