"""Which hits are good matches: the default cutoff that hides the rest behind "N weaker matches".

A text query's score is its cohort margin (search/query/fusion.py): how much better the query fits a
document than any typical query of another kind does. Below a small floor, nothing tells the hit from what
a typical query would find, and gibberish never passes it (on the real corpus "zzz qqq" scores 0.007 at
best, "xqzv plorth 12345" -0.01, the demo's gibberish -0.05, against 0.14 to 0.64 for what is there). A
weak model's right answers may fall under it too (the tiny test model gives some green crosses 0.02):
SearchSettings.good_margin sets it, and `all` shows everything. A picture query's
score is a cosine: there is always a nearest picture, so only the gap to the best counts.

Each hit is judged on its own (a reranker may have reordered them), never dropped: callers show the
strong ones and say how many weaker ones they leave out. Where none is strong, the first is shown all the
same, marked weak: a right answer a weak model scores low is never hidden behind "no good match" (on the
held-out media, "a red triangle" found nothing shown while the shot that shows it came first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mmsearch.hits import Hit
from mmsearch.query.understood import Understood


def mark_weak(hits: Sequence[Hit], floor: float | None, gap: float) -> list[Hit]:
    """The hits, each marked weak when its score is under `floor` or more than `gap` below the best."""
    if not hits:
        return []
    best = max(h.score for h in hits)
    return [replace(h, weak=(floor is not None and h.score < floor) or h.score < best - gap) for h in hits]


def named_alone(hits: list[Hit], understood: Understood | None) -> list[Hit]:
    """Where the words named people and nothing else ("alice"), each of their items is the answer: none
    is weak, however the name's words score."""
    if understood is None or understood.named is None or not understood.named.alone:
        return hits
    return [replace(h, weak=False) for h in hits]


def shown(hits: Sequence[Hit], show_all: bool = False) -> list[Hit]:
    """What a door shows: all hits where asked, else the strong ones, else the first alone."""
    if show_all:
        return list(hits)
    return [h for h in hits if not h.weak] or list(hits[:1])
