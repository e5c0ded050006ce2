"""Retrieval and classification metrics as pure functions: ranks and counts in, numbers out.

A query's ranks are the 1-based positions of its relevant items among the hits returned (relevant items
that were not returned have no rank). Relevance is binary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def recall_at(ranks: Sequence[int], relevant: int, k: int) -> float:
    """The share of a query's relevant items found in the top k. With more relevant items than k it
    cannot reach 1: recall@1 of a perfect ranking is 1 / relevant."""
    if relevant < 1:
        raise ValueError("a query needs at least one relevant item")
    return sum(r <= k for r in ranks) / relevant


def reciprocal_rank(ranks: Sequence[int]) -> float:
    """1 / the rank of the first relevant hit; 0 when none was returned."""
    return 1.0 / min(ranks) if ranks else 0.0


def mean_reciprocal_rank(first_ranks: Sequence[int | None]) -> float:
    """MRR over queries, each given by the rank of its first relevant hit (None: none returned)."""
    if not first_ranks:
        raise ValueError("no queries")
    return sum(1.0 / r for r in first_ranks if r is not None) / len(first_ranks)


def ndcg_at(ranks: Sequence[int], relevant: int, k: int) -> float:
    """Normalised discounted cumulative gain at k with binary relevance: the sum of 1 / log2(rank + 1)
    over relevant hits in the top k, divided by that sum for a perfect ranking (the relevant items
    first, as many as fit in k)."""
    if relevant < 1:
        raise ValueError("a query needs at least one relevant item")
    dcg = sum(1.0 / math.log2(r + 1) for r in ranks if r <= k)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(relevant, k) + 1))
    return dcg / ideal


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two [start, end] spans. Zero-length spans: 1 when they are
    the same instant, else 0 (a point has no overlap with anything else)."""
    (a0, a1), (b0, b1) = sorted(a), sorted(b)
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    if union == 0.0:
        return 1.0
    return inter / union


def best_moment_iou(
    ranked: Sequence[tuple[str, Sequence[tuple[float, float] | None]]],
    labelled: dict[str, Sequence[tuple[float, float]]],
) -> float | None:
    """The moment score of one query. `ranked` holds the returned hits in order as (path, moments), a
    moment being (t_start, t_end) or None when it has no times (a picture); `labelled` the labelled
    moments by path. Only the first hit whose path has labelled moments counts: its best IoU with any of
    them. None when no hit has a labelled path."""
    for path, moments in ranked:
        if path in labelled:
            spans = [m for m in moments if m is not None]
            return max((iou(m, t) for m in spans for t in labelled[path]), default=0.0)
    return None


def top_k_accuracy(truth: Sequence[int], ranked: Sequence[Sequence[int]], k: int) -> float:
    """The share of examples whose true class is among their k best predicted classes."""
    if not truth:
        raise ValueError("no examples")
    return sum(t in list(r)[:k] for t, r in zip(truth, ranked, strict=True)) / len(truth)


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """(classes, classes) counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, linearly interpolated between the two nearest values (numpy's default)."""
    if not values:
        raise ValueError("no values")
    return float(np.percentile(np.asarray(values, np.float64), q))


def pairwise(truth: dict[str, str], groups: dict[str, int | None]) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping: of the pairs of files grouped together, the share
    that are one person; of the pairs that are one person, the share grouped together. A file with no
    group (no face found) is a group of its own."""
    files = sorted(truth)
    group = {f: groups.get(f) if groups.get(f) is not None else f"alone:{f}" for f in files}
    together = same = both = 0
    for i, a in enumerate(files):
        for b in files[i + 1 :]:
            t, g = truth[a] == truth[b], group[a] == group[b]
            together, same, both = together + g, same + t, both + (t and g)
    return (both / together if together else 1.0), (both / same if same else 1.0)
