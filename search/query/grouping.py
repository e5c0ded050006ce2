"""Segments into hits: one hit per item, ranked by its best moment, with up to MAX_MOMENTS moments each.
The engine and the one-shot search (quick.py) group alike, so both rank the same."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields, replace

from mmsearch.hits import TEXT_SPACE, Hit, HitRow, Moment

MAX_MOMENTS = 3  # moments kept per hit
OVERFETCH = 4  # segments fetched per wanted item, growing by this factor while items are missing

MOMENT_FIELDS = tuple(f.name for f in fields(Moment))
ADJACENT_S = 1.0  # utterances at most this far apart can carry one phrase


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


def join_phrase(h: Hit, words_of: Callable[[str], frozenset[str]], query_words: frozenset[str]) -> Hit:
    """A phrase said across two utterances (Whisper cuts where it likes: "...Try again. Fail" | "again.
    Fail better."): when the hit's best moment is speech and another of its moments is the utterance just
    before or after it and holds query words the best one lacks, the best moment spans both."""
    best = h.moments[0]
    if best.space != TEXT_SPACE or best.t_start is None:
        return h
    missing = query_words - words_of(best.text or "")
    for other in h.moments[1:]:
        if other.space != TEXT_SPACE or other.t_start is None or not missing & words_of(other.text or ""):
            continue
        first, second = sorted((best, other), key=lambda m: m.t_start)
        if second.t_start - first.t_end <= ADJACENT_S:
            text = f"{first.text or ''} {second.text or ''}".strip()
            joined = replace(best, t_start=first.t_start, t_end=max(first.t_end, second.t_end), text=text)
            moments = (joined, *(m for m in h.moments[1:] if m is not other))
            return replace(h, moments=moments, **{f: getattr(joined, f) for f in MOMENT_FIELDS})
    return h
