"""Top-k items for per-space query vectors: the ranking the engine and the one-shot search share.

Each space's nearest segments are fetched (over-fetched, since items own several segments, growing until
k items are found or every space runs out), rescored exactly where the vector index is approximate,
joined in the word space by the transcripts that hold query words, scored by their cohort margins
(search/query/fusion.py) and grouped per item, speech moments narrowed to the words said. Where the
vectors and rows come from is the `Source`'s business: the engine's Store and SQLAlchemy catalog, or
the one-shot search's memory-mapped FAISS and sqlite3 (search/query/quick.py), which imports neither
torch nor SQLAlchemy; so this module imports only numpy and its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mmsearch.defaults import candidates_for
from mmsearch.hits import TEXT_SPACE, Hit, HitRow
from mmsearch.query.fusion import impostors, in_cosine_order, margins, terms
from mmsearch.query.grouping import OVERFETCH, grouped, join_phrase


class Source(Protocol):
    """Where one index's vectors, rows and query cohorts come from."""

    def size(self, space: str) -> int: ...

    def exact(self, space: str) -> bool: ...

    def nearest(
        self, space: str, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector, as VectorIndex.search gives them."""

    def rescored(self, space: str, ids: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, exact inner products) from the catalog's float32 vectors, best first; gone ids drop out."""

    def stored(self, space: str, ids: np.ndarray) -> np.ndarray:
        """The float32 vectors of these ids (all known to be there), in their order."""

    def word_candidates(self, words: list[str], limit: int) -> np.ndarray:
        """Ids of indexed transcript segments holding any of the words."""

    def rows(self, ids: list[int]) -> dict[int, HitRow]:
        """Rows of indexed segments; ids gone from the catalog are absent."""

    def cohort(self, space: str) -> np.ndarray:
        """The cohort of typical queries encoded as the space's queries."""


@dataclass(frozen=True)
class Candidates:
    """One space's candidate segments for a query, with their cosine similarities."""

    space: str
    ids: np.ndarray
    similarity: np.ndarray


def ranked(
    source: Source,
    queries: dict[str, np.ndarray],
    k: int,
    candidates: int,
    allowed: np.ndarray | None = None,
    words: str | None = None,
    min_score: float | None = None,
    calibrate: bool = False,
) -> list[Hit]:
    """Top-k items for per-space query vectors, one hit per item with its best moments. `words` adds
    the transcripts holding the query's words; `calibrate` scores every space by cohort margins (the
    word space always is), so spaces mix on one scale; `candidates` is the search setting of that name."""
    spaces = {s: q for s, q in queries.items() if source.size(s)}
    query_terms = terms(words) if words else frozenset()
    fetch = k * OVERFETCH + 8
    while True:
        found: list[Candidates] = []
        exhausted = True
        for space, query in spaces.items():
            exact = source.exact(space)
            wanted = fetch if exact else max(fetch, candidates_for(source.size(space), candidates))
            scores, ids = source.nearest(space, query, wanted, allowed)
            valid = ids >= 0
            got = Candidates(space, ids[valid], scores[valid])
            if not exact:
                got = Candidates(space, *source.rescored(space, got.ids, query))
            last = got.similarity[-1] if len(got.ids) else None
            raw = not (calibrate or space == TEXT_SPACE)  # a margin can pass min_score where cosine fails
            below = raw and min_score is not None and last is not None and last < min_score
            exhausted &= bool(len(got.ids) < fetch or below)
            if space == TEXT_SPACE and query_terms:
                got = _with_word_matches(source, got, query, query_terms, fetch, allowed)
            found.append(got)
        hits = _hits(source, found, spaces, words, min_score, calibrate)
        if len(hits) >= k or exhausted:
            return hits[:k]
        fetch *= OVERFETCH


def _with_word_matches(
    source: Source,
    got: Candidates,
    query: np.ndarray,
    query_terms: frozenset[str],
    fetch: int,
    allowed: np.ndarray | None,
) -> Candidates:
    """Transcripts that hold query words join the nearest ones, whatever their cosine."""
    extra = np.setdiff1d(source.word_candidates(sorted(query_terms), fetch), got.ids)
    if allowed is not None:
        extra = extra[np.isin(extra, allowed)]
    if not len(extra):
        return got
    similarity = source.stored(TEXT_SPACE, extra) @ query
    ids, similarities = np.concatenate([got.ids, extra]), np.concatenate([got.similarity, similarity])
    return Candidates(got.space, ids, similarities)


def _hits(
    source: Source,
    found: list[Candidates],
    queries: dict[str, np.ndarray],
    words: str | None,
    min_score: float | None,
    calibrate: bool,
) -> list[Hit]:
    """Score candidates (cohort margins in the word space, and everywhere when spaces mix), check every
    id against the catalog, and group segments per item, speech moments narrowed to the words said; a
    phrase said across two utterances joins."""
    rows = source.rows([int(i) for c in found for i in c.ids])
    scored: list[tuple[float, float, int]] = []
    for c in found:
        similarity = score = c.similarity.astype(np.float32)
        if (c.space == TEXT_SPACE or calibrate) and len(c.ids):
            cohort = impostors(source.cohort(c.space), queries[c.space])
            score = margins(similarity, cohort @ source.stored(c.space, c.ids).T)
            if c.space == TEXT_SPACE:  # the sentence model's cosine orders what is said (fusion.py)
                score = in_cosine_order(similarity, score)
        scored += zip(score.tolist(), c.similarity.tolist(), c.ids.tolist(), strict=True)
    if min_score is not None:
        scored = [f for f in scored if f[0] >= min_score]
    hits = grouped(scored, rows, words)
    query_terms = terms(words) if words else frozenset()
    if not query_terms:
        return hits
    return [h if rows[h.segment_id].words else join_phrase(h, terms, query_terms) for h in hits]
