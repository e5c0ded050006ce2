"""Teaching a concept from a user's examples: items marked as it (liked) and as not it (disliked) become a
logistic-regression probe over the items' mean picture vectors, saved with its examples and members
(search/storage/concepts.py).

Beside the user's own "not it", BACKGROUND items drawn at random from the index stand for everything
else, at BACKGROUND_WEIGHT each (a few of them may be the concept): with one liked example alone the probe
still has a boundary. The probe was chosen over the prototype (the mean liked vector minus the mean of the
rest, as Rocchio moves a query) by `mmsearch eval` on the held-out shapes and the real photos
(docs/concepts.md); both stay here so the evaluation keeps measuring them side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from mmsearch.errors import InvalidQueryError
from mmsearch.storage.catalog import Catalog
from mmsearch.storage.concepts import MEMBER, Classifier, Concepts, ConceptSummary, check_name

BACKGROUND = 256  # unlabelled items drawn as "probably not it"
BACKGROUND_WEIGHT = 0.3  # each one's weight, against 1 for an item the user marked
STRENGTH = 10.0  # the probe's inverse regularisation (C): unit vectors differ by little
SEED = 0  # the background draw: the same examples teach the same concept
METHODS = ("probe", "prototype")


def fit(liked: np.ndarray, disliked: np.ndarray, background: np.ndarray, method: str = "probe") -> Classifier:
    """A classifier from unit vectors: what is the concept, what is not, and a random draw of the rest."""
    background = background.reshape(-1, liked.shape[1])
    negatives = np.concatenate([disliked, background])
    if not len(negatives):
        raise InvalidQueryError("a concept needs items that are not it: mark one, or index more files")
    if method == "prototype":
        weights = liked.mean(axis=0) - negatives.mean(axis=0)
        middle = (liked.mean(axis=0) + negatives.mean(axis=0)) / 2
        scale = 1.0 / max(float(np.linalg.norm(weights)) ** 2, 1e-12) * 4.0  # logit +-2 at the means
        return Classifier((weights * scale).astype(np.float32), -float(middle @ weights) * scale)
    x = np.concatenate([liked, negatives])
    y = np.r_[np.ones(len(liked)), np.zeros(len(negatives))]
    weight = np.r_[np.ones(len(liked) + len(disliked)), np.full(len(background), BACKGROUND_WEIGHT)]
    weight[: len(liked)] *= weight[len(liked) :].sum() / len(liked)  # the two sides weigh the same
    probe = LogisticRegression(C=STRENGTH, max_iter=1000).fit(x, y, sample_weight=weight)
    return Classifier(probe.coef_[0].astype(np.float32), float(probe.intercept_[0]))


def teach(
    catalog: Catalog, concepts: Concepts, name: str, liked: Sequence[int], disliked: Sequence[int] = ()
) -> ConceptSummary:
    """Teach `name` these examples, beside those it was taught before (an item marked again takes its
    new mark), then tag every item it holds: the concept's summary."""
    name = check_name(name)
    both = sorted(set(liked) & set(disliked))
    if both:
        raise InvalidQueryError(f"items {both} are marked both as {name!r} and as not")
    examples = concepts.examples(name) | dict.fromkeys(disliked, False) | dict.fromkeys(liked, True)
    if not any(examples.values()):
        raise InvalidQueryError(f"mark at least one item as {name!r} to teach it")
    vectors, background = _examples_and_background(catalog.picture_vectors(), examples)
    missing = sorted(set(examples) - set(vectors))
    if missing:
        raise InvalidQueryError(f"items {missing} have no picture in the index: a concept learns pictures")
    yes = np.stack([vectors[i] for i, mark in examples.items() if mark])
    no = np.array([vectors[i] for i, mark in examples.items() if not mark], np.float32)
    classifier = fit(yes, no.reshape(-1, yes.shape[1]), background)
    members = {}
    for ids, chunk in catalog.picture_vectors():
        for item_id, p in zip(ids.tolist(), classifier.probability(chunk).tolist(), strict=True):
            marked = examples.get(item_id)
            if marked or (marked is None and p >= MEMBER):
                members[item_id] = p
    return concepts.save(name, classifier, examples, members)


def to_label(catalog: Catalog, concepts: Concepts, name: str, n: int = 8) -> list[tuple[int, float]]:
    """The `n` items the concept is least sure of, (id, probability) nearest 0.5 first, leaving out its
    examples: labelling them teaches it the most (uncertainty sampling)."""
    if not 1 <= n <= 100:
        raise InvalidQueryError(f"n must be between 1 and 100, not {n}")
    classifier, examples = concepts.classifier(name), concepts.examples(name)
    ids, probability = [], []
    for chunk_ids, chunk in catalog.picture_vectors():
        keep = np.array([i not in examples for i in chunk_ids.tolist()], bool)
        ids.append(chunk_ids[keep])
        probability.append(classifier.probability(chunk[keep]))
    if not ids:
        return []
    ids_all, p_all = np.concatenate(ids), np.concatenate(probability)
    order = np.argsort(np.abs(p_all - MEMBER), kind="stable")[:n]
    return [(int(ids_all[i]), float(p_all[i])) for i in order]


def _examples_and_background(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], examples: dict[int, bool]
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The examples' vectors, and BACKGROUND other items' drawn at random in one pass (the smallest of a
    random key each: a uniform draw without holding every vector)."""
    rng = np.random.default_rng(SEED)
    found: dict[int, np.ndarray] = {}
    keys, kept = np.zeros(0), None
    for ids, vectors in chunks:
        for i, item_id in enumerate(ids.tolist()):
            if item_id in examples:
                found[item_id] = vectors[i]
        others = np.array([i not in examples for i in ids.tolist()], bool)
        keys = np.concatenate([keys, rng.random(int(others.sum()))])
        kept = vectors[others] if kept is None else np.concatenate([kept, vectors[others]])
        if len(keys) > BACKGROUND:
            smallest = np.argpartition(keys, BACKGROUND)[:BACKGROUND]
            keys, kept = keys[smallest], kept[smallest]
    return found, kept if kept is not None else np.zeros((0, 1), np.float32)
