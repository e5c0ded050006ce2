"""Engine: a query in, ranked hits out (encode -> vector search -> catalog check -> filters -> hits)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from search.catalog import Item
from search.config import Settings
from search.errors import InvalidQueryError, NotFoundError
from search.models import Encoder
from search.store import Store, resolve_model

KINDS = ("image", "video", "audio")


@dataclass(frozen=True)
class Hit:
    item_id: int
    segment_id: int
    uri: str
    kind: str
    score: float
    width: int | None = None
    height: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    text: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    path_prefix: str | None = None
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise InvalidQueryError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def restricts_ids(self) -> bool:
        return bool(self.kind or self.path_prefix)


class Engine:
    """Opens an index folder with the model that made it and answers text and image queries."""

    def __init__(self, encoder: Encoder, store: Store):
        self.encoder = encoder
        self.store = store

    @classmethod
    def open(cls, settings: Settings, create: bool = False) -> Engine:
        spec = resolve_model(settings, create)
        m = settings.model
        encoder = Encoder(spec, m.device, m.batch_size, m.threads)
        return cls(encoder, Store.open(settings, encoder.record(), create=create))

    def search_text(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        query = query.strip()
        if not query:
            raise InvalidQueryError("the query text is empty")
        return self.search_vector(self.encoder.encode_texts([query])[0], k, filters)

    def search_image(self, image: Image.Image, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        return self.search_vector(self.encoder.encode_images([image])[0], k, filters)

    def search_vector(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        if k < 1:
            raise InvalidQueryError("k must be at least 1")
        filters = filters or Filters()
        allowed = None
        if filters.restricts_ids:
            allowed = self.store.catalog.segment_ids(filters.kind, filters.path_prefix)
            if not len(allowed):
                return []
        scores, ids = self.store.search(vector[None, :], k, allowed)
        return self._hits(scores[0], ids[0], filters.min_score)[:k]

    def _hits(self, scores: np.ndarray, ids: np.ndarray, min_score: float | None) -> list[Hit]:
        """Check every FAISS id against the catalog and keep the best segment of each item."""
        found = [(float(s), int(i)) for s, i in zip(scores, ids, strict=True) if i >= 0]
        if min_score is not None:
            found = [(s, i) for s, i in found if s >= min_score]
        rows = self.store.catalog.hits([i for _, i in found])
        hits: dict[int, Hit] = {}
        for score, seg_id in found:
            row = rows.get(seg_id)
            if row is None or row.item_id in hits:
                continue
            hits[row.item_id] = Hit(score=score, **asdict(row))
        return list(hits.values())

    def item(self, item_id: int) -> Item:
        item = self.store.catalog.item(item_id) if 0 < item_id < 2**63 else None
        if item is None:
            raise NotFoundError(f"no item with id {item_id}")
        return item

    def info(self) -> dict:
        return {
            "index": str(self.store.folder),
            "model": self.store.manifest["model"],
            "vectors": len(self.store.vectors),
            **self.store.catalog.counts(),
        }

    def close(self) -> None:
        self.store.close()
