"""Spread hits: maximal marginal relevance (Carbonell and Goldstein, 1998). Each next hit is the one with
the best `weight * relevance - (1 - weight) * likeness to a hit already taken`, so ten near-copies of one
product do not fill the first page. Relevance is the hits' scores scaled to 0..1 among the candidates (a
text query's margins and a picture query's cosines then weigh alike); likeness is the cosine of the
hits' picture vectors (a transcript's vector is zero: like nothing)."""

from __future__ import annotations

import numpy as np

from mmsearch.hits import Hit


def spread(hits: list[Hit], vectors: np.ndarray, weight: float, k: int) -> list[Hit]:
    """The k hits MMR takes from `hits` (best first, `vectors` unit rows in the same order), in the order
    taken."""
    if not hits:
        return []
    scores = np.array([h.score for h in hits], np.float64)
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.ones(len(hits))
    likeness = np.full(len(hits), -np.inf)
    left = np.ones(len(hits), bool)
    taken: list[int] = []
    for _ in range(min(k, len(hits))):
        value = weight * relevance - (1 - weight) * np.where(np.isinf(likeness), 0.0, likeness)
        best = int(np.argmax(np.where(left, value, -np.inf)))
        taken.append(best)
        left[best] = False
        likeness = np.maximum(likeness, vectors @ vectors[best])
    return [hits[i] for i in taken]
