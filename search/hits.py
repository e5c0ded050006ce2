"""What a search returns: hits per item with their moments, and the catalog rows they are made from.
Plain dataclasses, so the one-shot search (search/quick.py) builds the same hits without the engine's
imports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

IMAGE_SPACE, TEXT_SPACE = "image", "text"  # what a segment's vector was made from (pictures or words)
SPACES = (IMAGE_SPACE, TEXT_SPACE)
INDEXED, FAILED = "indexed", "failed"  # an item's status in the catalog
MAX_MOMENTS = 3  # moments kept per hit
OVERFETCH = 4  # segments fetched per wanted item, growing by this factor while items are missing


@dataclass(frozen=True)
class HitRow:
    segment_id: int
    item_id: int
    uri: str
    kind: str
    width: int | None
    height: int | None
    space: str
    t_start: float | None
    t_end: float | None
    text: str | None
    has_thumbnail: bool


@dataclass(frozen=True)
class Moment:
    """One segment of an item that matched: the whole picture, a video scene, or an utterance."""

    segment_id: int
    space: str  # "image" (a picture or keyframe) or "text" (a transcript)
    score: float  # the ranking score (see Hit.score)
    similarity: float  # cosine similarity to the query
    t_start: float | None = None
    t_end: float | None = None
    text: str | None = None
    has_thumbnail: bool = False


@dataclass(frozen=True)
class Hit:
    """One item, ranked by its best moment; its fields repeat that moment's."""

    item_id: int
    segment_id: int
    uri: str
    kind: str
    score: float  # cosine similarity, or a calibrated z-score when a text query spans both spaces
    similarity: float
    space: str
    width: int | None = None
    height: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    text: str | None = None
    has_thumbnail: bool = False
    moments: tuple[Moment, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


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


def clock(seconds: float) -> str:
    """mm:ss, or h:mm:ss from an hour on."""
    h, rest = divmod(int(seconds), 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"
