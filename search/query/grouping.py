"""Segments into hits: one hit per item, ranked by its best moment, with up to MAX_MOMENTS moments each.
The engine and the one-shot search (quick.py) group alike, so both rank the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

from mmsearch.hits import Hit, HitRow, Moment

MAX_MOMENTS = 3  # moments kept per hit
OVERFETCH = 4  # segments fetched per wanted item, growing by this factor while items are missing

MOMENT_FIELDS = tuple(f.name for f in fields(Moment))


def moment(row: HitRow, score: float, similarity: float) -> Moment:
    return Moment(
        row.segment_id, row.space, score, similarity, row.t_start, row.t_end, row.text, row.has_thumbnail
    )


def hit(row: HitRow, moments: Sequence[Moment]) -> Hit:
    """An item's hit: its row, its moments (best first), and the best moment's fields on top."""
    best = moments[0]
    return Hit(
        item_id=row.item_id,
        uri=row.uri,
        kind=row.kind,
        width=row.width,
        height=row.height,
        moments=tuple(moments),
        **{f: getattr(best, f) for f in MOMENT_FIELDS},
    )


def grouped(scored: list[tuple[float, float, int]], rows: dict[int, HitRow]) -> list[Hit]:
    """One hit per item from (score, similarity, segment id), best first; up to MAX_MOMENTS moments
    each. Segments without a row (gone from the catalog) drop out."""
    scored = sorted(scored, key=lambda f: -f[0])
    moments: dict[int, list[Moment]] = {}
    for score, similarity, seg_id in scored:
        row = rows.get(seg_id)
        if row is None:
            continue
        per_item = moments.setdefault(row.item_id, [])
        if len(per_item) < MAX_MOMENTS:
            per_item.append(moment(row, score, similarity))
    # dicts keep insertion order: best item first
    return [hit(rows[m[0].segment_id], m) for m in moments.values()]
