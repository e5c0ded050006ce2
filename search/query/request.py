"""What a search asks for, as one value every door builds (the HTTP routes, the command line, MCP, answers,
library callers): the words, pictures or items to look for with their weights, the filters, how many, in
what order, and which of the weaker matches to return. Engine.search (search/query/engine.py) checks it
and answers it; the doors only translate their own inputs into it."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Literal, get_args

from PIL import Image

from mmsearch.errors import InvalidQueryError, MediaTooLargeError
from mmsearch.query.filters import parse as parse_filter
from mmsearch.user_files import megabytes

Kind = Literal["image", "video", "audio", "product"]  # what an item is; the filter `kind` takes these
KINDS = get_args(Kind)
DEFAULT_K = 10
MAX_FEEDBACK = 200  # liked and disliked items in one request


def check_text(text: str | None, what: str) -> None:
    """NUL cannot be stored or matched by PostgreSQL (nor meant by anyone): refuse it up front."""
    if text is not None and "\x00" in text:
        raise InvalidQueryError(f"the {what} contains a NUL character")


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    path_prefix: str | None = None  # an absolute path, or one under the folder the indexed files share
    min_score: float | None = None
    where: str | None = None  # the filter language (search/query/filters.py), e.g. 'category = "shoes"'

    def __post_init__(self) -> None:
        check_text(self.path_prefix, "path prefix")
        check_text(self.where, "filter")
        if self.kind is not None and self.kind not in KINDS:
            raise InvalidQueryError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.where:
            parse_filter(self.where)  # a bad filter fails here, before any search

    @property
    def restricts_ids(self) -> bool:
        return bool(self.kind or self.path_prefix or (self.where and self.where.strip()))


@dataclass(frozen=True)
class Picture:
    """A query picture's bytes, decoded by the engine as the indexer decodes files (Engine.picture)."""

    data: bytes
    raw: bool = False  # a camera RAW file (by its name: encode/images.is_raw)

    @classmethod
    def from_base64(cls, text: str, limit: int) -> Picture:
        """A picture sent as base64 text, refused before decoding when it cannot fit `limit` bytes."""
        if len(text) > limit * 4 // 3 + 4:
            raise MediaTooLargeError(f"a picture is over the limit of {megabytes(limit)}")
        try:
            return cls(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidQueryError("a picture is not base64") from None


@dataclass(frozen=True)
class Concept:
    """A concept taught by examples (mmsearch concept teach), looked for by itself: the items it is surest
    of first (search/storage/concepts.py)."""

    name: str


@dataclass(frozen=True)
class Term:
    """One thing to look for: words, a picture (its bytes, or decoded), an indexed item (by id, its
    pictures' mean: more like this) or a concept, with a weight; a negative weight pushes its matches
    down."""

    value: str | Picture | Image.Image | int | Concept
    weight: float = 1.0


@dataclass(frozen=True)
class SearchRequest:
    """One search. A single positive term of words searches pictures and speech in one ranking; a single
    picture, pictures alike; anything else is composed into one picture-space query (Engine.compose).
    The first positive words are the query's words: a date or a city typed in them becomes a filter
    unless `literal`; `hybrid` also matches them as full text (words alone only).

    `liked` and `disliked` are feedback on hits (item ids): the query moves toward the liked and away from
    the disliked (Rocchio), and the disliked are not shown again. `boost` ranks a concept's items first;
    `diverse` spreads the top hits (maximal marginal relevance, its weight of relevance from 0 to 1). A
    stack of shots of one moment is one hit, its best shot, unless `every_shot`. What safe search flagged at
    index time is left out unless not `safe`."""

    terms: tuple[Term, ...]
    k: int = DEFAULT_K
    filters: Filters = field(default_factory=Filters)
    collapse: float | None = None  # keep one of pictures at least this alike
    sort: str | None = None  # by a field, not relevance: "-taken_at" (search/query/ordering.py)
    hybrid: bool = False
    literal: bool = False
    show_all: bool = False  # also the weaker matches, marked weak
    liked: tuple[int, ...] = ()
    disliked: tuple[int, ...] = ()
    boost: str | None = None  # a concept's name
    diverse: float | None = None
    every_shot: bool = False  # every picture of a stack, not one hit per stack
    safe: bool = True  # leave out what safe search flagged (the field `explicit`), where the index has it

    def __post_init__(self) -> None:
        both = sorted(set(self.liked) & set(self.disliked))
        if both:
            raise InvalidQueryError(f"items {both} are both liked and disliked")
        if len(self.liked) + len(self.disliked) > MAX_FEEDBACK:
            raise InvalidQueryError(f"feedback on at most {MAX_FEEDBACK} items")
        if self.diverse is not None and not 0.0 <= self.diverse <= 1.0:
            raise InvalidQueryError(f"diverse is a weight from 0 to 1, not {self.diverse}")

    @classmethod
    def words(cls, text: str, **options) -> SearchRequest:
        return cls((Term(text),), **options)

    @property
    def words_at(self) -> int | None:
        """The position of the query's words among the terms."""
        return next((i for i, t in enumerate(self.terms) if isinstance(t.value, str) and t.weight > 0), None)
