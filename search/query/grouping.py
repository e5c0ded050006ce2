"""Segments into hits: one hit per item, ranked by its best moment, with up to MAX_MOMENTS moments each.
The engine and the one-shot search (quick.py) group alike, so both rank the same."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields, replace

from mmsearch.hits import TEXT_SPACE, Hit, HitRow, Moment
from mmsearch.query.fusion import terms, tokens

MAX_MOMENTS = 3  # moments kept per hit
OVERFETCH = 4  # segments fetched per wanted item, growing by this factor while items are missing

MOMENT_FIELDS = tuple(f.name for f in fields(Moment))
ADJACENT_S = 1.0  # utterances at most this far apart can carry one phrase
CONTEXT_S = 1.0  # kept around the words that matched


def spoken_span(words: Sequence[Sequence], query: str) -> tuple[int, int] | None:
    """Which of the words said ([start, end, word] each) are the query's: of the windows of as many words
    as the query has, the one holding most of them, from its first match to its last (indices). None when
    only stop words match (a paraphrase: the whole utterance is the moment)."""
    wanted, content = set(tokens(query)), terms(query)
    said = [set(tokens(w[2])) for w in words]
    if not any(t & content for t in said):
        return None
    matched = [bool(t & wanted) for t in said]
    width = max(1, len(tokens(query)))
    start = max(range(max(1, len(said) - width + 1)), key=lambda i: sum(matched[i : i + width]))
    inside = [i for i in range(start, min(len(said), start + width)) if matched[i]]
    return inside[0], inside[-1]


def _adjacent(a: HitRow, b: HitRow) -> bool:
    return b.t_start - a.t_end <= ADJACENT_S and a.t_start - b.t_end <= ADJACENT_S


def moment(row: HitRow, score: float, similarity: float) -> Moment:
    return Moment(
        row.segment_id,
        row.space,
        score,
        similarity,
        row.t_start,
        row.t_end,
        row.text,
        row.has_thumbnail,
        row.boxes,
    )


def said_moment(row: HitRow, score: float, similarity: float, query: str, said: Sequence[HitRow]) -> Moment:
    """Speech narrowed to the words that matched (± CONTEXT_S, within the file): "0:01-0:06" of a 0:00-0:08
    utterance, not all of it. The words of the item's found utterances next to this one count too, so a
    phrase Whisper cut in two ("...Try again. Fail" | "again. Fail better.") is one moment."""
    near = sorted((o for o in said if o is row or _adjacent(row, o)), key=lambda o: o.t_start)
    words = [w for o in near for w in o.words]
    span = spoken_span(words, query)
    if span is None:
        return moment(row, score, similarity)
    t0, t1 = float(words[span[0]][0]), float(words[span[1]][1])
    end = row.duration if row.duration is not None else max(o.t_end for o in near)
    texts = [o.text or "" for o in near if o.t_start < t1 and o.t_end > t0] or [row.text or ""]
    return Moment(
        row.segment_id,
        row.space,
        score,
        similarity,
        round(max(0.0, t0 - CONTEXT_S), 3),
        round(min(end, t1 + CONTEXT_S), 3),
        " ".join(texts),
        row.has_thumbnail,
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


def grouped(
    scored: list[tuple[float, float, int]], rows: dict[int, HitRow], query: str | None = None
) -> list[Hit]:
    """One hit per item from (score, similarity, segment id), best first; up to MAX_MOMENTS moments
    each, speech narrowed to the query's words where their times are known. Segments without a row (gone
    from the catalog) drop out."""
    picked: dict[int, list[tuple[HitRow, float, float]]] = {}
    for score, similarity, seg_id in sorted(scored, key=lambda f: (-f[0], -f[1])):  # ties: the closer
        row = rows.get(seg_id)
        if row is None:
            continue
        per_item = picked.setdefault(row.item_id, [])
        if len(per_item) < MAX_MOMENTS:
            per_item.append((row, score, similarity))
    hits = []
    for per_item in picked.values():  # dicts keep insertion order: best item first
        said = [r for r, _, _ in per_item if r.space == TEXT_SPACE and r.words and r.t_start is not None]
        timed = {r.segment_id for r in said} if query else set()
        moments = [
            said_moment(r, score, sim, query, said) if r.segment_id in timed else moment(r, score, sim)
            for r, score, sim in per_item
        ]
        hits.append(hit(per_item[0][0], moments))
    return hits


def join_phrase(h: Hit, words_of: Callable[[str], frozenset[str]], query_words: frozenset[str]) -> Hit:
    """For speech without word times (said_moment joins by words): a phrase said across two utterances
    (Whisper cuts where it likes: "...Try again. Fail" | "again. Fail better."): when the hit's best
    moment is speech and another of its moments is the utterance just before or after it and holds query
    words the best one lacks, the best moment spans both."""
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
