"""Second-stage rerankers: a stronger scorer reorders the first stage's best hits.

A reranker gives each hit a score for the query; the engine re-sorts the pictures among the top
`depth` hits by it. Transcript hits keep their places: a picture model's text-to-text score does not
compare with its text-to-image score, and the fused order of seen vs said (search/query/fusion.py) stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mmsearch.defaults import MAX_IMAGE_PIXELS
from mmsearch.errors import MediaError
from mmsearch.hits import IMAGE_SPACE, Hit
from mmsearch.query.pictures import hit_picture
from mmsearch.storage.catalog import Catalog

if TYPE_CHECKING:
    from mmsearch.encode.models import Encoder


class Reranker(Protocol):
    name: str

    def scores(self, query: str, hits: Sequence[Hit]) -> np.ndarray:
        """One score per hit, higher is better; NaN for a hit it cannot score."""
        ...


class ClipReranker:
    """A second open_clip/SigLIP model (typically larger than the index's) scoring each picture hit
    against the query text with its own towers: the image file, or the stored keyframe of a scene."""

    def __init__(self, encoder: Encoder, catalog: Catalog, max_pixels: int = MAX_IMAGE_PIXELS):
        self.encoder, self.catalog, self.max_pixels = encoder, catalog, max_pixels
        self.name = f"clip:{encoder.spec.label()}"

    def scores(self, query: str, hits: Sequence[Hit]) -> np.ndarray:
        out = np.full(len(hits), np.nan, np.float32)
        images, where = [], []
        for i, hit in enumerate(hits):
            if hit.space != IMAGE_SPACE:
                continue
            try:
                picture = hit_picture(self.catalog, hit, self.encoder.image_size, self.max_pixels)
            except MediaError:
                continue  # changed or gone since indexing: it keeps its first-stage place
            if picture is not None:
                images.append(picture)
                where.append(i)
        if images:
            query_vector = self.encoder.encode_texts([query])[0]
            out[where] = self.encoder.encode_images(images) @ query_vector
        return out


def rerank(hits: list[Hit], scores: np.ndarray) -> list[Hit]:
    """Re-sort the hits that have a score among the places they hold; the others stay put."""
    slots = [i for i, s in enumerate(scores) if not np.isnan(s)]
    order = sorted(slots, key=lambda i: -scores[i])
    out = list(hits)
    for slot, source in zip(slots, order, strict=True):
        out[slot] = hits[source]
    return out
