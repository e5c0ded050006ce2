"""What a search returns: hits per item with their moments, and the catalog rows they are made from;
the names of vector spaces and item states the catalog stores. Plain dataclasses on the ground floor:
the catalog makes HitRows, the query room groups them into Hits (query/grouping.py), answers and the
API read them, and the one-shot search (query/quick.py) builds the same hits without the engine's
imports."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SPACE, TEXT_SPACE = "image", "text"  # what a segment's vector was made from (pictures or words)
SPACES = (IMAGE_SPACE, TEXT_SPACE)
INDEXED, FAILED = "indexed", "failed"  # an item's status in the catalog
SEEN, SAID, WRITTEN, DESCRIBED = "seen", "said", "written", "described"  # where a moment's match is


def source(space: str, t_start: float | None, boxes: list | None) -> str:
    """What a segment holds, by where it came from: a picture or keyframe (seen), speech (said), text read
    in a picture or frame (written) or an item's own text, such as a product's title (described)."""
    if space == IMAGE_SPACE:
        return SEEN
    if boxes:
        return WRITTEN
    return SAID if t_start is not None else DESCRIBED


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
    words: list | None = None  # speech: [[start, end, word], ...]
    duration: float | None = None  # the file's, for videos and recordings
    written: list | None = None  # text read in a picture: [[x0, y0, x1, y1, line, confidence], ...]

    @property
    def boxes(self) -> list[list[int]] | None:
        return [line[:4] for line in self.written] if self.written else None


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
    boxes: list[list[int]] | None = None  # where the text was read: [x0, y0, x1, y1] in the file's pixels

    @property
    def source(self) -> str:
        return source(self.space, self.t_start, self.boxes)

    def public(self) -> dict:
        return _moment_fields(self)


@dataclass(frozen=True)
class Hit:
    """One item, ranked by its best moment; its fields repeat that moment's."""

    item_id: int
    segment_id: int
    uri: str
    kind: str
    score: float  # a text query's cohort margin (search/query/fusion.py); a picture query's cosine
    similarity: float
    space: str
    width: int | None = None
    height: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    text: str | None = None
    has_thumbnail: bool = False
    boxes: list[list[int]] | None = None
    moments: tuple[Moment, ...] = ()
    weak: bool = False  # below the relevance cutoff (search/query/relevance.py): shown only on request
    stack: int | None = None  # the stack it stands for (search/storage/stacks.py): its best shot
    more: int = 0  # the stack's other shots, folded into this hit

    @property
    def source(self) -> str:
        return source(self.space, self.t_start, self.boxes)

    def public(self) -> dict:
        """The hit as every door returns it: the item, its best moment's fields, and its moments."""
        return {
            "item_id": self.item_id,
            "uri": self.uri,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "weak": self.weak,
            "stack": self.stack,
            "more": self.more,
            **_moment_fields(self),
            "moments": [m.public() for m in self.moments],
        }


MOMENT_FIELDS = ("segment_id", "space", "source", "score", "similarity", "t_start", "t_end", "text", "boxes")


def _moment_fields(moment: Moment | Hit) -> dict:
    """A moment's public fields; a hit repeats its best moment's."""
    return {name: getattr(moment, name) for name in MOMENT_FIELDS}


def clock(seconds: float) -> str:
    """mm:ss, or h:mm:ss from an hour on."""
    h, rest = divmod(int(seconds), 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"
