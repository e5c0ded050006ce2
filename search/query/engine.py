"""Engine: the front door. A search request in, a result out (Engine.search: check -> understand ->
encode -> vector search -> catalog check -> filters -> hits); the items, fields and pictures behind hits."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

from mmsearch.config import SearchSettings, Settings
from mmsearch.encode import faces as face_finding
from mmsearch.encode import safety
from mmsearch.encode.factory import open_encoder, uses_kept_tower
from mmsearch.encode.images import DecodedImage, decode_image
from mmsearch.encode.query_tower import FOLDER as TOWER_FOLDER
from mmsearch.encode.query_tower import QueryTower
from mmsearch.encode.spec import ModelSpec
from mmsearch.encode.word_tower import OnnxSentences
from mmsearch.errors import InvalidQueryError, MediaTooLargeError, NotFoundError
from mmsearch.hits import IMAGE_SPACE, TEXT_SPACE, Hit, HitRow
from mmsearch.learn import concepts as teaching
from mmsearch.learn.classify import ZeroShotClassifier, tag_collection
from mmsearch.query import dedup, diverse, ordering, place, when, who
from mmsearch.query.dedup import DuplicateGroup
from mmsearch.query.filters import BUILT_IN
from mmsearch.query.filters import parse as parse_filter
from mmsearch.query.fusion import COHORT
from mmsearch.query.grouping import hit, moment
from mmsearch.query.pictures import hit_picture
from mmsearch.query.ranking import ranked
from mmsearch.query.relevance import mark_weak, named_alone
from mmsearch.query.request import Concept, Filters, Picture, SearchRequest, Term, check_text
from mmsearch.query.rerank import ClipReranker, Reranker, rerank
from mmsearch.query.result import SearchResult
from mmsearch.query.understood import Understood
from mmsearch.storage.concepts import Concepts, ConceptSummary
from mmsearch.storage.people import People
from mmsearch.storage.schema import Item, Segment
from mmsearch.storage.stacks import Stacks
from mmsearch.storage.store import Store, resolve_model, resolve_text_model
from mmsearch.user_files import megabytes

Feedback = tuple[Sequence[int], Sequence[int]]  # liked, disliked: item ids

if TYPE_CHECKING:
    from mmsearch.encode.base import EncoderBase
    from mmsearch.indexer.manifest import Columns
    from mmsearch.indexer.pipeline import IndexReport, ProgressFn

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009; Weaviate and Qdrant use it too)
KEYWORD_DEPTH = 50  # full-text matches fused with the vector hits
PERIODS = {"year": 4, "month": 7, "day": 10}  # an ISO date's characters that name the period
DATES = ("indexed", "modified")  # the built-in fields that are dates
FACE_SHARE = 0.2  # a query picture "of a face": its largest face this share of its shorter side, or more
# (the face-recognition portraits: 0.27 to 0.42; a group photo's faces: under 0.1)
# Relevance feedback (Rocchio, with SMART's weights: Manning et al., Introduction to Information Retrieval,
# 9.1.1): the query, plus BETA times the liked items' mean, minus GAMMA times the disliked items' mean.
ALPHA, BETA, GAMMA = 1.0, 0.75, 0.15
WIDEN = 4  # candidates per hit asked for, where spreading picks among more than k
SAFE = f"not {safety.FIELD} = true"  # what safe search keeps: all but the flagged (unchecked items too)


class Engine:
    """Opens an index folder with the model that made it and answers text and image queries."""

    def __init__(
        self,
        encoder: EncoderBase,
        store: Store,
        search: SearchSettings | None = None,
        reranker: Reranker | None = None,
        settings: Settings | None = None,
    ):
        self.encoder = encoder
        self.store = store
        self.search_settings = search or SearchSettings()
        self.reranker = reranker
        self.settings = settings  # the whole of them, for indexing: Engine.open keeps them
        self._cohorts: dict[str, np.ndarray] = {}
        self._fields: tuple[int, dict[str, float | str]] = (-1, {})
        self._root: tuple[int, str] = (-1, "")
        self._face_reader: face_finding.FaceReader | None = None  # made on the first picture of a face

    @classmethod
    def open(cls, settings: Settings, create: bool = False) -> Engine:
        spec = resolve_model(settings, create)
        m = settings.model.model_copy(update={"text_model": resolve_text_model(settings, create)})
        encoder = open_encoder(spec, m)
        store = Store.open(settings, encoder.record(), create=create)
        if encoder.query_tower is not None:
            store.keep_query_tower(encoder.query_tower.folder)
        elif uses_kept_tower(m):
            # An index that holds a query tower is searched with it, here as by the one-shot search
            # (search/query/quick.py), so both give the same hits whichever runs.
            encoder.query_tower = QueryTower.open(store.folder / TOWER_FOLDER, encoder.fingerprint)
        if isinstance(encoder.words, OnnxSentences):
            store.keep_word_tower(encoder.words.folder)
        reranker = None
        if settings.search.rerank_model:
            from mmsearch.encode.models import Encoder  # torch: only for a second model that reranks

            second = ModelSpec(settings.search.rerank_model, settings.search.rerank_pretrained).normalised()
            reranker = ClipReranker(Encoder.for_spec(second, m), store.catalog)
        return cls(encoder, store, settings.search, reranker, settings)

    def index(
        self,
        path: Path,
        prune: bool = False,
        ray: str | None = None,
        columns: Columns | None = None,
        root: Path | None = None,
        on_progress: ProgressFn | None = None,
    ) -> IndexReport:
        """Bring the index up to date with a folder or a manifest, here or on Ray, with the settings it
        was opened with (indexer/dispatch.py; imported here: searching never loads the decoders)."""
        from mmsearch.indexer.dispatch import index_path

        settings = self.settings or Settings(index_dir=self.store.folder, search=self.search_settings)
        return index_path(path, self.encoder, self.store, settings, prune, ray, columns, root, on_progress)

    def search(self, request: SearchRequest, today: dt.date | None = None) -> SearchResult:
        """The one search every door makes (search/query/request.py): the request checked against the
        limits, its words' date, people and place taken as filters (a picture of a named person's face:
        that person), a relative path prefix put under the folder the
        indexed files share, then words, a picture or a composed query searched, and sorted if asked."""
        start = time.perf_counter()
        s = self.search_settings
        if not 1 <= request.k <= s.max_k:
            raise InvalidQueryError(f"k must be between 1 and {s.max_k}, not {request.k}")
        if request.sort is not None:
            ordering.parse(request.sort)  # a bad name fails before any search
        if not request.terms:
            raise InvalidQueryError("give words, a picture or an item to search for")
        filters = request.filters
        prefix = filters.path_prefix
        if prefix and not prefix.startswith("/") and "://" not in prefix:
            filters = replace(filters, path_prefix=self.common_root() + prefix)
        if request.safe and safety.FIELD in self.fields():
            filters = _narrowed(filters, SAFE)
        terms, pictures = list(request.terms), []
        for i, term in enumerate(terms):
            if isinstance(term.value, Picture):
                decoded = self.picture(term.value)
                pictures.append((decoded.width, decoded.height))
                terms[i] = Term(decoded.image, term.weight)
        words, understood = request.words_at, None
        query = str(terms[words].value).strip() if words is not None else None
        if len(terms) == 1 and isinstance(terms[0].value, Image.Image) and not request.literal:
            understood, filters = self.seen(terms[0].value, filters)
        if query is not None:
            understood, filters = self.understood(query, today or dt.date.today(), filters, request.literal)
            if understood is not None:
                terms[words] = Term(understood.text, terms[words].weight)
        stacked = not request.every_shot and self.stacks.keeping()
        widened = request.diverse is not None or stacked
        depth = request.k * (WIDEN if widened else 1) + len(request.disliked)
        if request.boost is None:
            hits = self._search_terms(terms, request, filters, depth)
        else:  # the concept's good matches first, then the others', then the weaker ones
            self.concepts.classifier(request.boost)  # an unknown concept is an error, not no boost
            member = f"concept = {json.dumps(request.boost)}"
            parts = (
                self._search_terms(terms, request, _narrowed(filters, w), depth)
                for w in (member, f"not {member}")
            )
            hits = sorted((hit for part in parts for hit in part), key=lambda h: h.weak)
        hits = named_alone(self._judged(self._stacked(hits) if stacked else hits, request), understood)
        if request.sort:
            hits = self.ordered(hits, request.sort)
        took = (time.perf_counter() - start) * 1000
        return SearchResult.of(
            query,
            request.k,
            hits,
            request.show_all,
            understood=understood,
            took_ms=took,
            pictures=tuple(pictures),
        )

    def _search_terms(self, terms: list[Term], request: SearchRequest, filters: Filters, k: int) -> list[Hit]:
        alone = terms[0].value if len(terms) == 1 and terms[0].weight > 0 else None
        collapse, feedback = request.collapse, (request.liked, request.disliked)
        if isinstance(alone, str):
            return self.search_text(alone, k, filters, collapse, request.hybrid, feedback)
        if request.hybrid:
            raise InvalidQueryError("hybrid matches words alone: drop hybrid, or the pictures and items")
        if isinstance(alone, Image.Image):
            return self.search_image(alone, k, filters, collapse, feedback)
        return self.search_composed(terms, k, filters, collapse, feedback)

    def _judged(self, hits: list[Hit], request: SearchRequest) -> list[Hit]:
        """The hits with what the request says of them: the disliked left out, spread (`diverse`), k at
        most."""
        if request.disliked:
            hits = [h for h in hits if h.item_id not in request.disliked]
        if request.diverse is not None:
            hits = diverse.spread(hits, self._hit_vectors(hits), request.diverse, request.k)
        return hits[: request.k]

    def search_text(
        self,
        query: str,
        k: int = 10,
        filters: Filters | None = None,
        collapse: float | None = None,
        hybrid: bool = False,
        feedback: Feedback = ((), ()),
    ) -> list[Hit]:
        """What is seen (images, keyframes) and what is said (transcripts), each scored by its cohort margin
        (search/query/fusion.py), so one scale holds across spaces and indexes. `collapse` keeps one of
        pictures at least that alike (near-duplicates); `hybrid` fuses full-text matches in by rank;
        `feedback`, (liked, disliked) item ids, moves the query (Engine.moved)."""
        query = query.strip()
        if not query:
            raise InvalidQueryError("the query text is empty")
        check_text(query, "query")
        vectors = self.moved(self._query_vectors(query), *feedback)
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

    def picture(self, picture: Picture) -> DecodedImage:
        """A query picture's bytes decoded exactly as the indexer decodes files (a JPEG at the same reduced
        scale; a camera RAW file), so a file used as a query finds itself at ~1.0, within the query
        picture limits (SearchSettings). The one door for query pictures, whoever sends them."""
        s = self.search_settings
        if len(picture.data) > s.max_picture_bytes:
            raise MediaTooLargeError(f"a picture is over the limit of {megabytes(s.max_picture_bytes)}")
        return decode_image(
            picture.data, s.max_picture_pixels, min_side=self.encoder.image_size, raw=picture.raw
        )

    def search_image(
        self,
        image: Image.Image,
        k: int = 10,
        filters: Filters | None = None,
        collapse: float | None = None,
        feedback: Feedback = ((), ()),
    ) -> list[Hit]:
        """Images and video keyframes that look like the example."""
        vector = self.moved({IMAGE_SPACE: self.encoder.encode_images([image])[0]}, *feedback)[IMAGE_SPACE]
        hits = self.search_vector(vector, k * 2 if collapse is not None else k, filters)
        return self._collapse(self._mark_pictures(hits), collapse)[:k]

    def _mark_pictures(self, hits: list[Hit]) -> list[Hit]:
        return mark_weak(hits, None, self.search_settings.picture_gap)

    def _collapse(self, hits: list[Hit], threshold: float | None) -> list[Hit]:
        """Keep the best of each set of pictures at least `threshold` alike (search/query/dedup.py)."""
        if threshold is None or not hits:
            return hits
        return dedup.collapse(hits, self._hit_vectors(hits), threshold)

    def _stacked(self, hits: list[Hit]) -> list[Hit]:
        """One hit per stack, where its first member ranked: the stack's best shot when it is among the
        hits (else that first member), with how many more shots it stands for."""
        of = self.stacks.of_items([h.item_id for h in hits])
        out: list[Hit] = []
        at: dict[int, int] = {}
        for h in hits:
            if h.item_id not in of:
                out.append(h)
                continue
            stack, best, size = of[h.item_id]
            if stack not in at:
                at[stack] = len(out)
                out.append(replace(h, stack=stack, more=size - 1))
            elif h.item_id == best:
                first = out[at[stack]]
                out[at[stack]] = replace(h, stack=stack, more=size - 1, weak=first.weak)
        return out

    def _hit_vectors(self, hits: list[Hit]) -> np.ndarray:
        """The hits' best moments' picture vectors; a transcript's is zero (alike to nothing)."""
        vectors = np.zeros((len(hits), self.store.dim), np.float32)
        pictures = [i for i, h in enumerate(hits) if h.space == IMAGE_SPACE]
        ids = np.array([hits[i].segment_id for i in pictures], np.int64)
        if pictures:
            vectors[pictures] = self.store.vectors_of(IMAGE_SPACE, ids)
        return vectors

    def moved(
        self, vectors: dict[str, np.ndarray], liked: Sequence[int] = (), disliked: Sequence[int] = ()
    ) -> dict[str, np.ndarray]:
        """The query's vectors moved by feedback on hits (Rocchio): toward the mean of the liked items'
        vectors and away from the disliked items', in each space where those items have vectors.
        Rocchio over a probe: one vector, so the search stays one FAISS lookup over every item."""
        if not liked and not disliked:
            return vectors
        for item_id in (*liked, *disliked):
            self.item(item_id)
        moved = {}
        for space, query in vectors.items():
            total = ALPHA * query
            for ids, weight in ((liked, BETA), (disliked, -GAMMA)):
                found = [v for i in ids if (v := self._item_vector(i, space)) is not None]
                if found:
                    total = total + weight * np.mean(found, axis=0)
            moved[space] = (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)
        return moved

    def _item_vector(self, item_id: int, space: str) -> np.ndarray | None:
        """The unit mean of an item's vectors in a space; None where it has none there."""
        ids = self.store.catalog.item_segment_ids(item_id, space)
        if not len(ids):
            return None
        mean = self.store.vectors_of(space, ids).mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

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
        if isinstance(term.value, Concept):
            return self.concepts.classifier(term.value.name).direction
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
        feedback: Feedback = ((), ()),
    ) -> list[Hit]:
        """Pictures for weighted text, image, item and concept terms: "this one, but in red, not striped";
        a concept alone: the items it is surest of first."""
        vector = self.moved({IMAGE_SPACE: self.compose(terms)}, *feedback)[IMAGE_SPACE]
        hits = self.search_vector(vector, k * 2 if collapse is not None else k, filters)
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
        """Items per value of a field (this index's, or a built-in one of the filters: kind, tag, width,
        ...), most first; `per` ("year", "month", "day") counts a date field (taken_at, indexed, modified)
        per period, in time order: a timeline."""
        if field not in self.fields() and field not in BUILT_IN:
            known = ", ".join([*BUILT_IN, *sorted(self.fields())])
            raise InvalidQueryError(f"unknown field {field!r}: this index can count by {known}")
        if per is not None and per not in PERIODS:
            raise InvalidQueryError(f"per must be one of {', '.join(PERIODS)}, not {per!r}")
        if per is not None and field in BUILT_IN and field not in DATES:
            raise InvalidQueryError(f"per counts a date field by period, and {field} is no date")
        return self.store.catalog.facet(field, PERIODS.get(per), limit)

    def understood(
        self, query: str, today: dt.date, filters: Filters | None = None, literal: bool = False
    ) -> tuple[Understood | None, Filters]:
        """A date, people and a place typed in the query taken as filters (search/query/when.py on
        taken_at, who.py on the people named, place.py on the GPS fields), where this index has those
        fields and the query is not `literal`: (what was understood, or None; the filters narrowed to it)."""
        filters = filters or Filters()
        fields = self.fields() if not literal else {}
        dated = when.dated(query, today) if when.FIELD in fields else None
        text = dated.text if dated else query
        people = who.named(text, self.people.names()) if not literal else None
        text = people.text if people else text
        near = place.placed(text, self._has_items) if set(place.FIELDS) <= set(fields) else None
        if dated is None and near is None and people is None:
            return None, filters
        understood = Understood(near.text if near else text, dated, near, people)
        return understood, _narrowed(filters, understood)

    def seen(self, picture: Image.Image, filters: Filters) -> tuple[Understood | None, Filters]:
        """A picture of a named person's face (the largest face, at least FACE_SHARE of the picture's
        shorter side) as a filter on that person: their pictures, ranked by this one."""
        if face_finding.missing() is not None or not self.people.names():
            return None, filters
        if self._face_reader is None:
            self._face_reader = face_finding.FaceReader()
        faces = self._face_reader.read(picture)
        if not faces or faces[0].size < FACE_SHARE * min(picture.size):
            return None, filters
        name = self.people.named_like(faces[0].vector)
        if name is None:
            return None, filters
        understood = Understood("", None, None, who.NamedQuery("", (name,), alone=True))
        return understood, _narrowed(filters, understood)

    def _has_items(self, city: place.City) -> bool:
        return len(self.store.catalog.segment_ids(where=parse_filter(city.where, self.fields()))) > 0

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
        vector = self._item_vector(item_id, IMAGE_SPACE)
        if vector is None:
            raise InvalidQueryError(f"item {item_id} has no picture")
        return vector

    def segment_item(self, segment_id: int) -> int:
        """The item a segment belongs to (NotFoundError for an unknown segment)."""
        rows = self.store.catalog.hits([segment_id])
        if segment_id not in rows:
            raise NotFoundError(f"no segment {segment_id}")
        return rows[segment_id].item_id

    def flagged(self, item_id: int) -> bool:
        """Whether safe search flagged the item at index time (its field `explicit`)."""
        return bool((self.item(item_id).fields or {}).get(safety.FIELD))

    def hit_picture(self, hit: Hit, min_side: int | None = None) -> Image.Image | None:
        """The picture behind a hit (query/pictures.py): None for a recording, MediaError where its file
        no longer reads."""
        return hit_picture(self.store.catalog, hit, min_side)

    def classify(
        self,
        target: Picture | int,
        labels: Sequence[str],
        templates: Sequence[str] | None = None,
        top: int = 5,
        threshold: float | None = None,
    ) -> list[tuple[str, float]]:
        """Zero-shot labels (search/learn/classify.py) for a query picture or an indexed item's pictures:
        the `top` labels by probability, or with `threshold` those whose cosine reaches it (multi-label)."""
        classifier = ZeroShotClassifier(self.encoder, labels, templates)
        if isinstance(target, int):
            vector = self.item_picture_vector(target)[None]
        else:
            vector = self.encoder.encode_images([self.picture(target).image])
        if threshold is not None:
            return classifier.multi_label(vector, threshold)[0][:top]
        return classifier.classify(vector, top=min(top, len(classifier.labels)))[0]

    def tag_collection(
        self,
        labels: Sequence[str],
        templates: Sequence[str] | None = None,
        threshold: float | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[int, Counter]:
        """Tag every item with pictures zero-shot, stored and filterable (`tag = shoe`): (items tagged,
        how often each label was given)."""
        classifier = ZeroShotClassifier(self.encoder, labels, templates)
        return tag_collection(self.store.catalog, classifier, threshold, on_progress=on_progress)

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
            "vectors_by_space": self.vector_counts(),
            **self.store.catalog.counts(),
        }

    @property
    def model(self) -> str:
        """The picture model's name, as people read it."""
        return self.encoder.spec.label()

    def vector_counts(self) -> dict[str, int]:
        """Vectors per space in the FAISS caches (no SQL: cheap enough for every metrics scrape)."""
        return {space: len(v) for space, v in self.store.vectors.items()}

    def observe_encoding(self, observe: Callable[[str, float], None]) -> None:
        """Call `observe(kind, seconds)` after each encoded batch (the server's metrics)."""
        self.encoder.on_batch = observe

    def keyframe(self, item_id: int) -> int | None:
        """A video's first keyframe segment: what stands for the video as a picture."""
        return self.store.catalog.first_keyframe(item_id)

    def thumbnail(self, segment_id: int) -> bytes | None:
        """The JPEG stored for a segment at index time (a keyframe, a frame with text read)."""
        return self.store.catalog.thumbnail(segment_id)

    @property
    def people(self) -> People:
        """The people the faces found are grouped into: listed, named, merged, hidden
        (search/storage/people.py); `person = "Alice"` in a filter keeps to their items."""
        return People(self.store.catalog.engine)

    @property
    def concepts(self) -> Concepts:
        """The concepts taught by examples (search/storage/concepts.py): `concept = "my dog"` in a filter
        keeps to the items each holds; Concept("my dog") as a term looks for them."""
        return Concepts(self.store.catalog.engine)

    def teach(self, name: str, liked: Sequence[int], disliked: Sequence[int] = ()) -> ConceptSummary:
        """Teach a concept these examples, beside those it was taught (search/learn/concepts.py), and tag
        the items it holds."""
        return teaching.teach(self.store.catalog, self.concepts, name, liked, disliked)

    def to_label(self, name: str, n: int = 8) -> list[tuple[int, float]]:
        """The items a concept is least sure of, (id, probability): what to mark next."""
        return teaching.to_label(self.store.catalog, self.concepts, name, n)

    def keep_stacks(self) -> int:
        """Keep stacks from now on (search/storage/stacks.py): the pictures indexed before looks were
        measured are measured from their files first, then all are stacked. How many stacks there are."""
        from mmsearch.indexer.looks import measure_missing

        indexer = (self.settings or Settings(index_dir=self.store.folder)).indexer
        measure_missing(self.store, indexer, self.encoder.image_size)
        return self.stacks.start()

    @property
    def stacks(self) -> Stacks:
        """The stacks of shots of one moment and copies (search/storage/stacks.py), each searched as one
        hit with its best shot, where the index keeps them (`mmsearch stacks start`)."""
        return Stacks(self.store.catalog.engine)

    def duplicates(self, threshold: float) -> list[DuplicateGroup]:
        """Groups of exact copies and of pictures at least `threshold` alike (query/dedup.py)."""
        return dedup.find_duplicates(self.store, threshold)

    def rebuild(self) -> int:
        """The FAISS caches rebuilt from the vectors stored in the catalog: how many vectors."""
        return self.store.rebuild()

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


def _narrowed(filters: Filters, understood: Understood | str) -> Filters:
    """The filters and what was understood (Engine.understood, Engine.seen), or another condition, both."""
    more = understood if isinstance(understood, str) else understood.where
    return replace(filters, where=f"({filters.where}) and ({more})" if filters.where else more)
