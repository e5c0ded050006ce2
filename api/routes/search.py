"""Search endpoints: text query (GET /search) and image query (POST /search/image)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from mmsearch import MediaTooLargeError
from mmsearch.api.deps import EngineDep, SettingsDep, shown_uris
from mmsearch.api.errors import error_responses
from mmsearch.hits import Hit, Moment
from mmsearch.query.filters import BUILT_IN, example
from mmsearch.query.request import (
    DEFAULT_K,
    MAX_FEEDBACK,
    Concept,
    Filters,
    Kind,
    Picture,
    SearchRequest,
    Term,
)
from mmsearch.query.result import SearchResult
from mmsearch.user_files import megabytes

router = APIRouter(tags=["search"])

MAX_QUERY_CHARS = 1000
SOURCE_DOC = (
    "where the match is: seen (a picture or keyframe), said (speech), written (text read in a picture) "
    "or described (an item's own text, such as a product's title)"
)


SCORE_DOC = (
    "ranking score, higher is closer. A text query's: its cohort margin, one scale for pictures and speech "
    "(the cosine minus the best cosine a typical query of another kind gets with the same document; above "
    "0.05 a good match, gibberish stays under it; docs/search.md). A picture query's: the cosine similarity"
)
BOXES_DOC = (
    "text read in the picture or frame (OCR): each line's box [x0, y0, x1, y1] in the file's pixels, "
    "over width x height; null for anything else"
)
WEAK_DOC = "below the relevance cutoff (under the floor, or far below the best): left out unless all=true"


class MomentOut(BaseModel):
    segment_id: int
    space: str = Field(description="'image' (a picture or video keyframe) or 'text' (speech transcript)")
    source: str = Field(description=SOURCE_DOC)
    score: float = Field(description=SCORE_DOC)
    similarity: float = Field(description="cosine similarity to the query, in [-1, 1]")
    t_start: float | None = Field(None, description="start of the moment in seconds (video, audio)")
    t_end: float | None = Field(None, description="end of the moment in seconds")
    text: str | None = Field(
        None, description="what is said in the moment (speech) or written in the picture"
    )
    boxes: list[list[int]] | None = Field(None, description=BOXES_DOC)
    thumbnail_url: str | None = Field(None, description="a picture of the moment, when there is one")
    media_url: str = Field(description="the file, opened at the moment's start (#t=seconds)")


class HitOut(BaseModel):
    item_id: int
    segment_id: int = Field(description="the best moment's segment")
    uri: str = Field(description="where the item's file is (as indexed)")
    kind: str
    score: float = Field(description=SCORE_DOC)
    similarity: float = Field(description="cosine similarity of the best moment, in [-1, 1]")
    space: str = Field(description="the best moment's space: 'image' or 'text'")
    source: str = Field(description=SOURCE_DOC)
    width: int | None = None
    height: int | None = None
    t_start: float | None = Field(None, description="start of the best moment in seconds (video, audio)")
    t_end: float | None = None
    text: str | None = Field(
        None, description="what the best moment says (speech) or the picture's text read"
    )
    boxes: list[list[int]] | None = Field(None, description=BOXES_DOC)
    thumbnail_url: str | None = Field(None, description="a picture of the best moment or of the item")
    media_url: str = Field(description="the file, opened at the best moment (#t=seconds)")
    item_url: str
    moments: list[MomentOut] = Field(description="the item's best matching moments, best first (at most 3)")
    weak: bool = Field(False, description=WEAK_DOC)
    stack: int | None = Field(
        None, description="the stack this hit stands for (shots of one moment: GET /stacks/{id}), or null"
    )
    more: int = Field(0, description="the stack's other shots, folded into this hit (every_shot shows them)")


class Understood(BaseModel):
    """A date or a place typed in the query, taken as a filter (search/query/when.py, place.py);
    literal=true switches them off."""

    text: str = Field(description="what was looked for: the query without the date, people and place")
    when: str | None = Field(None, description="the date as typed, e.g. 'july 2023'")
    people: list[str] = Field(
        default_factory=list, description="the people named, as they are named in the index, e.g. ['Alice']"
    )
    place: str | None = Field(None, description="the city meant, with its country, e.g. 'Rome, Italy'")
    where: str = Field(
        description="the filter they became, e.g. 'taken_at >= 2023-07-01 and taken_at < 2023-08-01 and "
        "near 41.8919,12.5113 30km'"
    )


class SearchOut(BaseModel):
    query: str | None = Field(description="the query text; null for an image query")
    understood: Understood | None = Field(
        None, description="a date or a place found in the query and taken as a filter"
    )
    k: int
    took_ms: float = Field(description="server time for decoding, encoding and searching")
    hits: list[HitOut] = Field(
        description="best first, one per item, at most k; good matches only unless all=true"
    )
    weaker: int = Field(
        description="weaker matches among the k found: left out, or marked weak with all=true"
    )


class UploadOut(BaseModel):
    filename: str | None
    content_type: str | None
    bytes: int
    width: int = Field(description="after EXIF orientation")
    height: int


class ImageSearchOut(SearchOut):
    image: UploadOut


@dataclass(frozen=True)
class SearchParams:
    """The query parameters GET /search and POST /search/image share, as the request's options."""

    k: int
    filters: Filters
    collapse: float | None = None
    show_all: bool = False
    sort: str | None = None
    options: SearchOptions | None = None

    def request(self, *terms: Term, **more) -> SearchRequest:
        options = {"show_all": self.show_all, **(self.options.request_fields() if self.options else {})}
        return SearchRequest(terms, self.k, self.filters, self.collapse, self.sort, **options, **more)


ItemIds = list[Annotated[int, Field(ge=1, le=2**63 - 1)]]
LIKED_DOC = "feedback: items (ids) that are right; the query moves toward them"
DISLIKED_DOC = "feedback: items that are wrong; the query moves away from them, and they are not shown"
BOOST_DOC = "a concept's name (GET /concepts): its items first"
DIVERSE_DOC = "spread the hits (maximal marginal relevance): relevance's weight against novelty, e.g. 0.7"
EVERY_SHOT_DOC = "every shot of a stack, not one hit per stack (where the index keeps stacks)"
SAFE_DOC = "false: also what safe search flagged at index time (the field explicit)"


class SearchOptions(BaseModel):
    """Feedback on hits, what to favour and what to show: the same fields in a query string and in a JSON
    body."""

    liked: ItemIds = Field([], max_length=MAX_FEEDBACK, description=LIKED_DOC)
    disliked: ItemIds = Field([], max_length=MAX_FEEDBACK, description=DISLIKED_DOC)
    boost: str | None = Field(None, min_length=1, max_length=256, description=BOOST_DOC)
    diverse: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False, description=DIVERSE_DOC)
    every_shot: bool = Field(False, description=EVERY_SHOT_DOC)
    safe: bool = Field(True, description=SAFE_DOC)

    def request_fields(self) -> dict:
        return {
            "liked": tuple(self.liked),
            "disliked": tuple(self.disliked),
            "boost": self.boost,
            "diverse": self.diverse,
            "every_shot": self.every_shot,
            "safe": self.safe,
        }


async def search_params(
    k: Annotated[
        int, Query(description=f"number of hits, 1 to the server's search.max_k (default {DEFAULT_K})")
    ] = DEFAULT_K,
    min_score: Annotated[
        float | None, Query(ge=-1.0, le=1.0, allow_inf_nan=False, description="drop hits scoring lower")
    ] = None,
    kind: Annotated[Kind | None, Query(description="only items of this kind")] = None,
    path_prefix: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=4096,
            description="only items whose uri starts with this; a relative one is under the indexed folder",
        ),
    ] = None,
    where: Annotated[
        str | None,
        Query(
            max_length=2000,
            description='a filter, e.g. `category = "shoes" and price < 50` or `tag in [red, blue]` '
            "(docs/filters.md)",
        ),
    ] = None,
    collapse: Annotated[
        float | None,
        Query(ge=0.0, le=1.0, allow_inf_nan=False, description="keep one of pictures at least this alike"),
    ] = None,
    show_all: Annotated[
        bool, Query(alias="all", description="also the weaker matches, marked weak (default: good ones only)")
    ] = False,
    sort: Annotated[
        str | None,
        Query(
            max_length=130,
            description="order by a field, not relevance: -taken_at (newest first), price, size",
        ),
    ] = None,
    liked: Annotated[ItemIds, Query(max_length=MAX_FEEDBACK, description=LIKED_DOC)] = [],  # noqa: B006
    disliked: Annotated[ItemIds, Query(max_length=MAX_FEEDBACK, description=DISLIKED_DOC)] = [],  # noqa: B006
    boost: Annotated[str | None, Query(min_length=1, max_length=256, description=BOOST_DOC)] = None,
    diverse: Annotated[
        float | None, Query(ge=0.0, le=1.0, allow_inf_nan=False, description=DIVERSE_DOC)
    ] = None,
    every_shot: Annotated[bool, Query(description=EVERY_SHOT_DOC)] = False,
    safe: Annotated[bool, Query(description=SAFE_DOC)] = True,
) -> SearchParams:
    filters = Filters(kind=kind, path_prefix=path_prefix, min_score=min_score, where=where)
    options = {"boost": boost, "diverse": diverse, "every_shot": every_shot, "safe": safe}
    return SearchParams(
        k, filters, collapse, show_all, sort, SearchOptions(liked=liked, disliked=disliked, **options)
    )


SearchParamsDep = Annotated[SearchParams, Depends(search_params)]


def media_url(root: str, item_id: int, t_start: float | None) -> str:
    url = f"{root}/items/{item_id}/media"
    return f"{url}#t={t_start:g}" if t_start is not None else url


def thumbnail_url(root: str, hit: Hit, moment: Moment) -> str | None:
    if moment.has_thumbnail:
        return f"{root}/segments/{moment.segment_id}/thumbnail"
    if hit.kind == "audio":
        return None
    return f"{root}/items/{hit.item_id}/thumbnail"  # the image itself, or a video's first keyframe


def search_out(request: Request, result: SearchResult) -> dict:
    """The result's public shape (search/query/result.py), uris as this caller may see them, with links."""
    out = result.public()
    out["hits"] = hits_out(request, result.hits)
    return out


def hits_out(request: Request, hits: list[Hit]) -> list[HitOut]:
    root = request.scope.get("root_path", "").rstrip("/")
    shown = shown_uris(request)
    out = []
    for h in hits:
        fields = h.public()
        moments = [
            MomentOut(
                **m.public(),
                thumbnail_url=thumbnail_url(root, h, m),
                media_url=media_url(root, h.item_id, m.t_start),
            )
            for m in h.moments
        ]
        fields |= {"uri": shown(h.uri), "moments": moments}
        out.append(
            HitOut(
                **fields,
                thumbnail_url=moments[0].thumbnail_url,
                media_url=moments[0].media_url,
                item_url=f"{root}/items/{h.item_id}",
            )
        )
    return out


@router.get(
    "/search",
    summary="Search by text",
    response_model=SearchOut,
    responses=error_responses(400, 404, 422, 503),
)
def search_text(
    request: Request,
    engine: EngineDep,
    params: SearchParamsDep,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="what to look for, in words")],
    hybrid: Annotated[
        bool,
        Query(description="also match words in titles, transcripts and fields (full text), fused by rank"),
    ] = False,
    literal: Annotated[
        bool, Query(description="search the words as typed: no date or place in them is taken as a filter")
    ] = False,
) -> SearchOut:
    # A sync endpoint: FastAPI runs it in the threadpool, so encoding never blocks the event loop.
    result = engine.search(params.request(Term(q), hybrid=hybrid, literal=literal))
    return SearchOut(**search_out(request, result))


@router.post(
    "/search/image",
    summary="Search by example image",
    response_model=ImageSearchOut,
    responses=error_responses(400, 404, 413, 422, 503),
)
async def search_image(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    params: SearchParamsDep,
    file: Annotated[UploadFile, File(description="the example image (JPEG, PNG, WebP, GIF, BMP, TIFF)")],
) -> ImageSearchOut:
    limit = settings.search.max_picture_bytes
    data = await file.read(limit + 1)  # never more than the limit in memory
    if len(data) > limit:
        raise MediaTooLargeError(f"the upload is over the limit of {megabytes(limit)}")
    result = await run_in_threadpool(engine.search, params.request(Term(Picture(data))))
    (width, height) = result.pictures[0]
    upload = UploadOut(
        filename=file.filename, content_type=file.content_type, bytes=len(data), width=width, height=height
    )
    return ImageSearchOut(**search_out(request, result), image=upload)


class TermIn(BaseModel):
    """One term of a composed query: exactly one of text, item_id (more like this), image or concept."""

    text: str | None = Field(None, min_length=1, max_length=MAX_QUERY_CHARS)
    item_id: int | None = Field(None, ge=1, le=2**63 - 1, description="an indexed item: more like this")
    image: str | None = Field(None, description="a picture, base64 (JPEG, PNG, WebP, ...)")
    concept: str | None = Field(
        None, min_length=1, max_length=256, description="a concept taught by examples: its items"
    )
    weight: float = Field(1.0, ge=-10, le=10, allow_inf_nan=False, description="negative pushes it down")

    @model_validator(mode="after")
    def one_value(self) -> TermIn:
        if sum(v is not None for v in (self.text, self.item_id, self.image, self.concept)) != 1:
            raise ValueError("a term has exactly one of text, item_id, image or concept")
        return self


class ComposedIn(SearchOptions):
    terms: list[TermIn] = Field(min_length=1, max_length=16)
    k: int = DEFAULT_K
    kind: Kind | None = None
    path_prefix: str | None = Field(None, min_length=1, max_length=4096)
    where: str | None = Field(None, max_length=2000, description="a filter (docs/filters.md)")
    min_score: float | None = Field(None, ge=-1.0, le=1.0, allow_inf_nan=False)
    collapse: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    sort: str | None = Field(None, max_length=130, description="order by a field, not relevance")
    literal: bool = Field(False, description="no date or place in the words is taken as a filter")
    all: bool = Field(False, description="also the weaker matches, marked weak (default: good ones only)")


@router.post(
    "/search",
    summary="Composed search: weighted texts, pictures and items (more like this), with negatives",
    response_model=SearchOut,
    responses=error_responses(400, 404, 413, 422, 503),
)
def search_composed(
    request: Request, engine: EngineDep, settings: SettingsDep, body: ComposedIn
) -> SearchOut:
    terms = tuple(Term(_term_value(t, settings.search.max_picture_bytes), t.weight) for t in body.terms)
    filters = Filters(body.kind, body.path_prefix, body.min_score, body.where)
    options = {"collapse": body.collapse, "sort": body.sort, "literal": body.literal, "show_all": body.all}
    result = engine.search(SearchRequest(terms, body.k, filters, **options, **body.request_fields()))
    return SearchOut(**search_out(request, result))


def _term_value(term: TermIn, limit: int) -> str | int | Picture | Concept:
    if term.image is not None:
        return Picture.from_base64(term.image, limit)
    if term.concept is not None:
        return Concept(term.concept)
    return term.text if term.text is not None else term.item_id


class FiltersOut(BaseModel):
    built_in: list[str] = Field(description="fields every index has (docs/filters.md)")
    fields: dict[str, str] = Field(description="this index's manifest fields: 'number' or 'text'")
    example: str = Field(description="a filter that fits this index")


@router.get(
    "/filters",
    summary="The fields a filter (`where`) can name in this index, and an example",
    response_model=FiltersOut,
    responses=error_responses(503),
)
def filter_fields(engine: EngineDep) -> FiltersOut:
    fields = engine.fields()
    return FiltersOut(
        built_in=list(BUILT_IN),
        fields={name: "number" if isinstance(v, float) else "text" for name, v in fields.items()},
        example=example(fields),
    )


class FacetCount(BaseModel):
    value: float | str = Field(description="a value of the field, or a period ('2023', '2023-07')")
    count: int = Field(description="indexed items with it")


class FacetOut(BaseModel):
    field: str
    per: str | None = Field(description="the period counted by, for a date field")
    counts: list[FacetCount] = Field(description="most items first; per period: in time order")


@router.get(
    "/facets",
    summary="How many items have each value of a field: cameras, manifest fields, a timeline of taken_at",
    response_model=FacetOut,
    responses=error_responses(400, 503),
)
def facets(
    engine: EngineDep,
    field: Annotated[str, Query(max_length=128, description="a field of GET /filters, e.g. camera_model")],
    per: Annotated[
        Literal["year", "month", "day"] | None,
        Query(description="count a date field (taken_at) per period, in time order"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="values returned at most")] = 100,
) -> FacetOut:
    counts = engine.facet(field, per, limit)
    return FacetOut(field=field, per=per, counts=[FacetCount(value=v, count=n) for v, n in counts])
