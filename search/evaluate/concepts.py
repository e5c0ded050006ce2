"""How well a concept taught by examples finds the rest of its items: for 1, 3, 5, 10 and 20 examples
(half of them, rounded up, marked as the concept, the rest as not), the average precision of its
probability on the held-out items (every item but the examples), beside the zero-shot text query's on the
same items, for each way of fitting (search/learn/concepts.py METHODS). Examples are drawn at random,
DRAWS times per count (seeded): the figures are means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score

from mmsearch.learn.concepts import BACKGROUND, METHODS, fit
from mmsearch.query.engine import Engine
from mmsearch.storage.concepts import MEMBER

COUNTS = (1, 3, 5, 10, 20)
DRAWS = 5


@dataclass(frozen=True)
class ConceptCurve:
    name: str
    query: str  # the zero-shot text query for the same concept
    items: int  # the items labelled as it
    zero_shot_ap: dict[int, float]  # examples -> the text query's AP on the same held-out items
    ap: dict[str, dict[int, float]]  # method -> examples -> AP
    precision: dict[int, float]  # the probe's, at MEMBER
    recall: dict[int, float]


def concept_curves(engine: Engine, concepts: dict[str, tuple[str, frozenset[str]]]) -> list[ConceptCurve]:
    """Each labelled concept (name -> (text query, its files as the index names them)) taught and
    measured on the index's items' mean picture vectors."""
    chunks = list(engine.store.catalog.picture_vectors())
    ids = np.concatenate([c[0] for c in chunks])
    vectors = np.concatenate([c[1] for c in chunks])
    uri_of = {known.id: uri for uri, known in engine.store.catalog.known_files().items()}
    curves = []
    for name, (query, files) in concepts.items():
        truth = np.array([uri_of.get(int(i)) in files for i in ids])
        text = engine.encoder.encode_queries([query])[0]
        zero, ap = {}, {m: {} for m in METHODS}
        precision, recall = {}, {}
        for n in COUNTS:
            yes_n, no_n = (n + 1) // 2, n // 2
            if yes_n >= truth.sum() or no_n >= (~truth).sum():
                continue
            draws = [_draw(truth, yes_n, no_n, seed) for seed in range(DRAWS)]
            scores = {m: [] for m in METHODS}
            zero_draws, p_draws, r_draws = [], [], []
            for yes, no, background, held in draws:
                zero_draws.append(average_precision_score(truth[held], vectors[held] @ text))
                for method in METHODS:
                    classifier = fit(vectors[yes], vectors[no], vectors[background], method)
                    p = classifier.probability(vectors[held])
                    scores[method].append(average_precision_score(truth[held], p))
                    if method == METHODS[0]:
                        chosen = p >= MEMBER
                        p_draws.append(float(truth[held][chosen].mean()) if chosen.any() else 0.0)
                        r_draws.append(float(chosen[truth[held]].mean()))
            zero[n] = float(np.mean(zero_draws))
            for method in METHODS:
                ap[method][n] = float(np.mean(scores[method]))
            precision[n], recall[n] = float(np.mean(p_draws)), float(np.mean(r_draws))
        curves.append(ConceptCurve(name, query, int(truth.sum()), zero, ap, precision, recall))
    return curves


def _draw(truth: np.ndarray, yes_n: int, no_n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Examples drawn as a user would mark them, BACKGROUND others as teaching draws them, and the
    held-out items (all but the examples)."""
    rng = np.random.default_rng(seed)
    yes = rng.choice(np.flatnonzero(truth), yes_n, replace=False)
    no = rng.choice(np.flatnonzero(~truth), no_n, replace=False)
    held = np.setdiff1d(np.arange(len(truth)), np.r_[yes, no])
    background = rng.choice(held, min(BACKGROUND, len(held)), replace=False)
    return yes, no, background, held
