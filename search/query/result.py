"""What a search answers, as one value and one public shape: the hits (one per item, with its best
moments), what was understood in the words, how many weaker matches were found. Light on purpose (no
pydantic, SQLAlchemy or Pillow): the one-shot search (search/query/quick.py) returns it too."""

from __future__ import annotations

from dataclasses import dataclass

from mmsearch.hits import Hit
from mmsearch.query.relevance import shown
from mmsearch.query.understood import Understood


@dataclass(frozen=True)
class SearchResult:
    query: str | None  # the words asked for as given; None for a picture or an item alone
    k: int
    hits: list[Hit]  # best first: the good matches (else the best one, marked weak), or all where asked
    weaker: int  # weaker matches among the k found: left out, or marked weak
    understood: Understood | None = None
    took_ms: float = 0.0
    pictures: tuple[tuple[int, int], ...] = ()  # the query pictures' sizes, after EXIF orientation

    @classmethod
    def of(cls, query: str | None, k: int, hits: list[Hit], show_all: bool, **more) -> SearchResult:
        """From the k hits found, weak ones marked (search/query/relevance.py)."""
        return cls(query, k, shown(hits, show_all), sum(h.weak for h in hits), **more)

    def public(self) -> dict:
        """The shape every door returns (HTTP adds links; docs/api.md)."""
        u = self.understood
        understood = (
            None
            if u is None
            else {"text": u.text, "when": u.when, "people": u.who, "place": u.place, "where": u.where}
        )
        return {
            "query": self.query,
            "understood": understood,
            "k": self.k,
            "took_ms": round(self.took_ms, 3),
            "weaker": self.weaker,
            "hits": [h.public() for h in self.hits],
        }
