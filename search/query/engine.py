"""Engine: a query in, ranked hits out (encode -> vector search -> catalog check -> filters -> hits)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

from mmsearch.config import IndexerSettings, SearchSettings, Settings
from mmsearch.encode.factory import open_encoder
from mmsearch.encode.images import DecodedImage, decode_image
from mmsearch.encode.spec import ModelSpec
from mmsearch.encode.word_tower import OnnxSentences
from mmsearch.errors import InvalidQueryError, NotFoundError
from mmsearch.hits import IMAGE_SPACE, TEXT_SPACE, Hit, HitRow
from mmsearch.query import dedup, ordering, place, when
from mmsearch.query.filters import parse as parse_filter
from mmsearch.query.fusion import COHORT
from mmsearch.query.grouping import hit, moment
from mmsearch.query.pictures import hit_picture
from mmsearch.query.ranking import ranked
from mmsearch.query.relevance import mark_weak
from mmsearch.query.rerank import ClipReranker, Reranker, rerank
from mmsearch.query.understood import Understood
from mmsearch.storage.schema import Item, Segment
from mmsearch.storage.store import Store, resolve_model, resolve_text_model

if TYPE_CHECKING:
    from mmsearch.encode.base import EncoderBase

KINDS = ("image", "video", "audio", "product")
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009; Weaviate and Qdrant use it too)
KEYWORD_DEPTH = 50  # full-text matches fused with the vector hits
PERIODS = {"year": 4, "month": 7, "day": 10}  # an ISO date's characters that name the period
MAX_PICTURE_PIXELS = IndexerSettings.model_fields["max_image_pixels"].default  # as for indexed files


@dataclass(frozen=True)
class Term:
    """One part of a composed query: a text, a picture or an indexed item (by id), with a weight."""

    value: str | Image.Image | int
    weight: float = 1.0


def check_text(text: str | None, what: str) -> None:
    """NUL cannot be stored or matched by PostgreSQL (nor meant by anyone): refuse it up front."""
    if text is not None and "\x00" in text:
        raise InvalidQueryError(f"the {what} contains a NUL character")


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    path_prefix: str | None = None
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


class Engine:
    """Opens an index folder with the model that made it and answers text and image queries."""

    def __init__(
        self,
        encoder: EncoderBase,
        store: Store,
        search: SearchSettings | None = None,
        reranker: Reranker | None = None,
    ):
        self.encoder = encoder
        self.store = store
        self.search_settings = search or SearchSettings()
        self.reranker = reranker
        self._cohorts: dict[str, np.ndarray] = {}
        self._fields: tuple[int, dict[str, float | str]] = (-1, {})
        self._root: tuple[int, str] = (-1, "")

    @classmethod
    def open(cls, settings: Settings, create: bool = False) -> Engine:
        spec = resolve_model(settings, create)
        m = settings.model.model_copy(update={"text_model": resolve_text_model(settings, create)})
        encoder = open_encoder(spec, m)
        store = Store.open(settings, encoder.record(), create=create)
        if encoder.query_tower is not None:
            store.keep_query_tower(encoder.query_tower.folder)
        if isinstance(encoder.words, OnnxSentences):
            store.keep_word_tower(encoder.words.folder)
        reranker = None
        if settings.search.rerank_model:
            from mmsearch.encode.models import Encoder  # torch: only for a second model that reranks

            second = ModelSpec(settings.search.rerank_model, settings.search.rerank_pretrained).normalised()
            reranker = ClipReranker(Encoder.for_spec(second, m), store.catalog)
        return cls(encoder, store, settings.search, reranker)

    def search_text(
        self,
        query: str,
        k: int = 10,
        filters: Filters | None = None,
        collapse: float | None = None,
        hybrid: bool = False,
    ) -> list[Hit]:
        """What is seen (images, keyframes) and what is said (transcripts), each scored by its cohort margin
        (search/query/fusion.py), so one scale holds across spaces and indexes. `collapse` keeps one of
        pictures at least that alike (near-duplicates); `hybrid` fuses full-text matches in by rank."""
        query = query.strip()
        if not query:
            raise InvalidQueryError("the query text is empty")
        check_text(query, "query")
        vectors = self._query_vectors(query)
        depth = max(k, self.search_settings.rerank_depth) if self.reranker else k
        if collapse is not None:
            depth *= 2  # room for the duplicates collapsed away
        hits = self.search_vectors(vectors, depth, filters, words=query, calibrate=True)
        if self.reranker is not None and hits:
            hits = rerank(hits, self.reranker.scores(query, hits))
        s = self.search_settings
        hits = mark_weak(hits, s.good_margin, s.text_gap)
        if hybrid:
            hits = self._with_keywords(query, vectors, hits, depth, filters or Filters())
        return self._collapse(hits, collapse)[:k]

    def _query_vectors(self, text: str) -> dict[str, np.ndarray]:
        """The query in each space: the picture model's text tower, and the text model for words."""
        pictures = self.encoder.encode_queries([text])[0]
        words = pictures if self.encoder.words is None else self.encoder.encode_word_queries([text])[0]
        return {IMAGE_SPACE: pictures, TEXT_SPACE: words}

    def _with_keywords(
        self, query: str, vectors: dict[str, np.ndarray], hits: list[Hit], depth: int, filters: Filters
    ) -> list[Hit]:
        """Reciprocal rank fusion of the vector hits with full-text matches (FTS5 / PostgreSQL), so an
        exact SKU or a word said or written reaches the top; ties go to the full-text match."""
        conditions = [Item.kind == filters.kind] if filters.kind else []
        if filters.path_prefix:
            conditions.append(Item.uri.startswith(filters.path_prefix, autoescape=True))
        if filters.where:
            conditions.append(self._where(filters))
        where = and_(*conditions) if conditions else None
        matched = self.store.catalog.keyword_search(query, max(depth, KEYWORD_DEPTH), where)
        vector_rank = {h.item_id: r for r, h in enumerate(hits, 1)}
        keyword_rank = {item_id: r for r, item_id in enumerate(matched, 1)}
        fused = {
            item_id: sum(
                1.0 / (RRF_K + ranks[item_id]) for ranks in (vector_rank, keyword_rank) if item_id in ranks
            )
            for item_id in vector_rank.keys() | keyword_rank.keys()
        }
        by_item = {h.item_id: h for h in hits} | self._keyword_hits(
            set(keyword_rank) - set(vector_rank), vectors
        )
        order = sorted(fused, key=lambda i: (-fused[i], keyword_rank.get(i, 1 << 30), vector_rank.get(i, 0)))
        return [  # what holds the query's words is never weak
            replace(by_item[i], score=fused[i], weak=by_item[i].weak and i not in keyword_rank)
            for i in order
            if i in by_item
        ]

    def _keyword_hits(self, item_ids: set[int], vectors: dict[str, np.ndarray]) -> dict[int, Hit]:
        """Hits for items found by their words alone, pointing at their first segment."""
        first = self.store.catalog.first_segments(sorted(item_ids))
        rows = self.store.catalog.hits(list(first.values()))
        out = {}
        for space in {row.space for row in rows.values()}:
            in_space = [row for row in rows.values() if row.space == space]
            ids = np.array([row.segment_id for row in in_space], np.int64)
            for row, similarity in zip(
                in_space, self.store.vectors_of(space, ids) @ vectors[space], strict=True
            ):
                out[row.item_id] = hit(row, [moment(row, float(similarity), float(similarity))])
        return out

    def picture(self, data: bytes, max_pixels: int = MAX_PICTURE_PIXELS, raw: bool = False) -> DecodedImage:
        """A query picture's bytes decoded exactly as the indexer decodes files (a JPEG at the same reduced
        scale; `raw`: a camera RAW file), so a file used as a query finds itself at ~1.0. The one door for
        query pictures: the command line, the HTTP API and library callers with bytes all come in here."""
        return decode_image(data, max_pixels, min_side=self.encoder.image_size, raw=raw)

    def search_image(
        self, image: Image.Image, k: int = 10, filters: Filters | None = None, collapse: float | None = None
    ) -> list[Hit]:
        """Images and video keyframes that look like the example."""
        vector = self.encoder.encode_images([image])[0]
        hits = self.search_vector(vector, k * 2 if collapse is not None else k, filters)
        return self._collapse(self._mark_pictures(hits), collapse)[:k]

    def _mark_pictures(self, hits: list[Hit]) -> list[Hit]:
        return mark_weak(hits, None, self.search_settings.picture_gap)

    def _collapse(self, hits: list[Hit], threshold: float | None) -> list[Hit]:
        """Keep the best of each set of pictures at least `threshold` alike (search/query/dedup.py)."""
        if threshold is None or not hits:
            return hits
        vectors = np.zeros((len(hits), self.store.dim), np.float32)  # transcripts: never collapsed
        pictures = [i for i, h in enumerate(hits) if h.space == IMAGE_SPACE]
        ids = np.array([hits[i].segment_id for i in pictures], np.int64)
        vectors[pictures] = self.store.vectors_of(IMAGE_SPACE, ids)
        return dedup.collapse(hits, vectors, threshold)

    def compose(self, terms: Sequence[Term]) -> np.ndarray:
        """One picture-space query vector from weighted terms: the normalised weighted sum of their unit
        vectors (texts by the text tower, images by the image tower, items by the mean of their picture
        vectors). A negative weight pushes what matches that term down."""
        if not terms:
            raise InvalidQueryError("a composed query needs at least one term")
        total = np.zeros(self.store.dim, np.float32)
        for term in terms:
            total += term.weight * self._term_vector(term)
        norm = float(np.linalg.norm(total))
        if norm < 1e-6:
            raise InvalidQueryError("the weighted terms cancel out: nothing is left to search for")
        return total / norm

    def _term_vector(self, term: Term) -> np.ndarray:
        if isinstance(term.value, Image.Image):
            return self.encoder.encode_images([term.value])[0]
        if isinstance(term.value, int):
            return self.item_picture_vector(term.value)
        text = term.value.strip()
        if not text:
            raise InvalidQueryError("a text term is empty")
        return self.encoder.encode_queries([text])[0]

    def search_composed(
        self,
        terms: Sequence[Term],
        k: int = 10,
        filters: Filters | None = None,
        collapse: float | None = None,
    ) -> list[Hit]:
        """Pictures for weighted text, image and item terms: "this one, but in red, not striped"."""
        hits = self.search_vector(self.compose(terms), k * 2 if collapse is not None else k, filters)
        return self._collapse(self._mark_pictures(hits), collapse)[:k]

    def search_vector(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """A query vector in the picture space (an image embedding, or a text one to skip speech)."""
        return self.search_vectors({IMAGE_SPACE: vector}, k, filters)

    def search_vectors(
        self,
        queries: dict[str, np.ndarray],
        k: int = 10,
        filters: Filters | None = None,
        words: str | None = None,
        calibrate: bool = False,
    ) -> list[Hit]:
        """Top-k items for per-space query vectors, one hit per item with its best moments
        (search/query/ranking.py). `words` adds the transcripts holding the query's words."""
        if k < 1:
            raise InvalidQueryError("k must be at least 1")
        filters = filters or Filters()
        allowed = None
        if filters.restricts_ids:
            allowed = self.store.catalog.segment_ids(filters.kind, filters.path_prefix, self._where(filters))
            if not len(allowed):
                return []
        self.store.refresh()
        source = _StoreSource(self.store, self._cohort)
        candidates = self.search_settings.candidates
        return ranked(source, queries, k, candidates, allowed, words, filters.min_score, calibrate)

    def _cohort(self, space: str) -> np.ndarray:
        """The cohort of typical queries (search/query/fusion.py), encoded as queries of the space."""
        if space not in self._cohorts:
            encode = (
                self.encoder.encode_word_cohort if space == TEXT_SPACE else self.encoder.encode_lone_queries
            )
            self._cohorts[space] = encode(list(COHORT))
        return self._cohorts[space]

    def item(self, item_id: int) -> Item:
        item = self.store.catalog.item(item_id) if 0 < item_id < 2**63 else None
        if item is None:
            raise NotFoundError(f"no item with id {item_id}")
        return item

    def fields(self) -> dict[str, float | str]:
        """The index's user fields (manifest columns), each with a value an item has; read again after
        each write (the catalog's generation)."""
        generation = self.store.catalog.generation()
        if self._fields[0] != generation:
            self._fields = (generation, self.store.catalog.field_examples())
        return self._fields[1]

    def facet(self, field: str, per: str | None = None, limit: int = 100) -> list[tuple[float | str, int]]:
        """Items per value of a field, most first; `per` ("year", "month", "day") counts a date field
        (taken_at) per period, in time order: a timeline."""
        if field not in self.fields():
            known = ", ".join(sorted(self.fields())) or "none"
            raise InvalidQueryError(f"unknown field {field!r}: this index's fields are {known}")
        if per is not None and per not in PERIODS:
            raise InvalidQueryError(f"per must be one of {', '.join(PERIODS)}, not {per!r}")
        return self.store.catalog.facet(field, PERIODS.get(per), limit)

    def understood(
        self, query: str, today: dt.date, filters: Filters | None = None, literal: bool = False
    ) -> tuple[Understood | None, Filters]:
        """A date and a place typed in the query taken as filters (search/query/when.py on taken_at,
        search/query/place.py on the GPS fields), where this index has those fields and the query is not
        `literal`: (what was understood, or None; the filters narrowed to it)."""
        filters = filters or Filters()
        fields = self.fields() if not literal else {}
        dated = when.dated(query, today) if when.FIELD in fields else None
        text = dated.text if dated else query
        near = place.placed(text, self._has_items) if set(place.FIELDS) <= set(fields) else None
        if dated is None and near is None:
            return None, filters
        understood = Understood(near.text if near else text, dated, near)
        where = f"({filters.where}) and ({understood.where})" if filters.where else understood.where
        return understood, replace(filters, where=where)

    def _has_items(self, where: str) -> bool:
        return len(self.store.catalog.segment_ids(where=parse_filter(where, self.fields()))) > 0

    def ordered(self, hits: list[Hit], sort: str) -> list[Hit]:
        """The hits by a field instead of relevance ("-taken_at": newest first; query/ordering.py)."""
        return ordering.ordered(hits, sort, self.store.catalog.sort_values)

    def common_root(self) -> str:
        """The folder all indexed files share (read again after each write)."""
        generation = self.store.catalog.generation()
        if self._root[0] != generation:
            self._root = (generation, self.store.catalog.common_root())
        return self._root[1]

    def _where(self, filters: Filters) -> ColumnElement | None:
        """The filter as a condition on items; a field the index lacks is an error naming those it has."""
        return parse_filter(filters.where, self.fields()) if filters.where else None

    def item_picture_vector(self, item_id: int) -> np.ndarray:
        """The unit mean of an item's picture vectors: the item as one picture, to search with or
        classify. NotFoundError for an unknown id, InvalidQueryError for an item without pictures."""
        self.item(item_id)
        pictures = self.store.catalog.item_segment_ids(item_id, IMAGE_SPACE)
        if not len(pictures):
            raise InvalidQueryError(f"item {item_id} has no picture")
        mean = self.store.vectors_of(IMAGE_SPACE, pictures).mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def hit_picture(self, hit: Hit, min_side: int | None = None) -> Image.Image | None:
        """The picture behind a hit (query/pictures.py): None for a recording, MediaError where its file
        no longer reads."""
        return hit_picture(self.store.catalog, hit, min_side)

    def tags(self, item_id: int) -> list[tuple[str, float, str]]:
        """An item's tags: (label, score, source)."""
        return self.store.catalog.tags(item_id)

    def transcript(self, item_id: int) -> list[Segment]:
        """An item's speech segments in time order: what the viewer shows around a moment."""
        self.item(item_id)  # 404 for an unknown id
        return self.store.catalog.transcript(item_id)

    def info(self) -> dict:
        return {
            "index": str(self.store.folder),
            "model": self.store.manifest["model"],
            "vectors": len(self.store),
            "vectors_by_space": {space: len(v) for space, v in self.store.vectors.items()},
            **self.store.catalog.counts(),
        }

    def close(self) -> None:
        self.store.close()


class _StoreSource:
    """The ranking's Source (search/query/ranking.py) over an open Store: its FAISS caches and catalog."""

    def __init__(self, store: Store, cohort: Callable[[str], np.ndarray]):
        self.store = store
        self.cohort = cohort

    def size(self, space: str) -> int:
        return len(self.store.vectors.get(space, ()))

    def exact(self, space: str) -> bool:
        return self.store.vectors[space].exact

    def nearest(
        self, space: str, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.store.search(space, query[None, :], k, allowed)
        return scores[0], ids[0]

    def rescored(self, space: str, ids: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An approximate index only has to find the candidates, not order them."""
        chunks = list(self.store.catalog.vectors(ids))  # ids gone from the catalog drop out here
        if not chunks:
            return ids[:0], np.zeros(0, np.float32)
        found = np.concatenate([c[0] for c in chunks])
        similarity = np.concatenate([c[1] for c in chunks]) @ query
        order = np.argsort(-similarity, kind="stable")
        return found[order], similarity[order]

    def stored(self, space: str, ids: np.ndarray) -> np.ndarray:
        return self.store.vectors_of(space, ids)

    def word_candidates(self, words: list[str], limit: int) -> np.ndarray:
        return self.store.catalog.word_candidates(words, limit)

    def rows(self, ids: list[int]) -> dict[int, HitRow]:
        return self.store.catalog.hits(ids)
