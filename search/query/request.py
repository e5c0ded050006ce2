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
class Term:
    """One thing to look for: words, a picture (its bytes, or decoded) or an indexed item (by id, its
    pictures' mean: more like this), with a weight; a negative weight pushes its matches down."""

    value: str | Picture | Image.Image | int
    weight: float = 1.0


@dataclass(frozen=True)
class SearchRequest:
    """One search. A single positive term of words searches pictures and speech in one ranking; a single
    picture, pictures alike; anything else is composed into one picture-space query (Engine.compose).
    The first positive words are the query's words: a date or a city typed in them becomes a filter
    unless `literal`; `hybrid` also matches them as full text (words alone only)."""

    terms: tuple[Term, ...]
    k: int = DEFAULT_K
    filters: Filters = field(default_factory=Filters)
    collapse: float | None = None  # keep one of pictures at least this alike
    sort: str | None = None  # by a field, not relevance: "-taken_at" (search/query/ordering.py)
    hybrid: bool = False
    literal: bool = False
    show_all: bool = False  # also the weaker matches, marked weak

    @classmethod
    def words(cls, text: str, **options) -> SearchRequest:
        return cls((Term(text),), **options)

    @property
    def words_at(self) -> int | None:
        """The position of the query's words among the terms."""
        return next((i for i, t in enumerate(self.terms) if isinstance(t.value, str) and t.weight > 0), None)
