"""Concepts taught by examples ("my dog", "our product shots"): each a linear classifier over the items'
picture vectors (fitted in search/learn/concepts.py), kept with the examples it was taught. An item the
classifier gives at least MEMBER probability is the concept's: tagged with it (source "concept", so
`tag` facets count it and `concept = "my dog"` filters on it); new items are scored as they are written,
in the writer's transaction (tag_new)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from mmsearch.errors import InvalidQueryError, NotFoundError
from mmsearch.storage.schema import ConceptExample, ConceptRow, Tag

SOURCE = "concept"  # the tags concepts give
MEMBER = 0.5  # the probability at which an item is the concept's
MAX_NAME = 256


@dataclass(frozen=True)
class Classifier:
    """Logistic: an item's probability of being the concept's is sigmoid(vector . weights + bias)."""

    weights: np.ndarray
    bias: float

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        logits = np.asarray(vectors, np.float32) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))

    @property
    def direction(self) -> np.ndarray:
        """The unit vector along which the probability grows: the concept as a query vector (ranking by
        it is ranking by probability)."""
        return self.weights / max(float(np.linalg.norm(self.weights)), 1e-12)


@dataclass(frozen=True)
class ConceptSummary:
    name: str
    items: int  # the items it tags
    liked: int  # examples of it
    disliked: int  # examples of what it is not
    updated: dt.datetime


def check_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise InvalidQueryError(f"a concept's name is 1 to {MAX_NAME} characters of text")
    return name


class Concepts:
    """The index's concepts: listed, their classifiers and examples, saved with their members, forgotten."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def names(self) -> list[str]:
        with Session(self.engine) as s:
            return list(s.scalars(select(ConceptRow.name).order_by(ConceptRow.name)))

    def listed(self) -> list[ConceptSummary]:
        members = (
            select(Tag.label, func.count().label("n")).where(Tag.source == SOURCE).group_by(Tag.label)
        ).subquery()
        examples = (
            select(
                ConceptExample.concept_id,
                func.sum(case((ConceptExample.liked, 1), else_=0)).label("liked"),
                func.count().label("all"),
            ).group_by(ConceptExample.concept_id)
        ).subquery()
        q = (
            select(ConceptRow.name, members.c.n, examples.c.liked, examples.c.all, ConceptRow.updated_at)
            .outerjoin(members, members.c.label == ConceptRow.name)
            .outerjoin(examples, examples.c.concept_id == ConceptRow.id)
            .order_by(ConceptRow.name)
        )
        with Session(self.engine) as s:
            return [
                ConceptSummary(name, n or 0, int(liked or 0), int((every or 0) - (liked or 0)), updated)
                for name, n, liked, every, updated in s.execute(q)
            ]

    def summary(self, name: str) -> ConceptSummary:
        found = [c for c in self.listed() if c.name == name]
        if not found:
            raise self._unknown(name)
        return found[0]

    def classifier(self, name: str) -> Classifier:
        with Session(self.engine) as s:
            row = s.scalars(select(ConceptRow).where(ConceptRow.name == name)).first()
            if row is None:
                raise self._unknown(name)
            return Classifier(np.frombuffer(row.weights, np.float32).copy(), row.bias)

    def examples(self, name: str) -> dict[int, bool]:
        """item id -> liked, for the examples `name` was taught ({} for a concept not taught yet)."""
        q = (
            select(ConceptExample.item_id, ConceptExample.liked)
            .join(ConceptRow, ConceptRow.id == ConceptExample.concept_id)
            .where(ConceptRow.name == name)
        )
        with Session(self.engine) as s:
            return {item_id: liked for item_id, liked in s.execute(q)}

    def members(self, name: str, item_ids: list[int]) -> set[int]:
        """Which of these items are the concept's."""
        q = select(Tag.item_id).where(Tag.source == SOURCE, Tag.label == name, Tag.item_id.in_(item_ids))
        with Session(self.engine) as s:
            return set(s.scalars(q))

    def save(
        self, name: str, classifier: Classifier, examples: Mapping[int, bool], members: Mapping[int, float]
    ) -> ConceptSummary:
        """The concept's classifier, its examples and the items it tags (id -> probability), in one
        transaction: readers see the old concept or the new one, never half of each."""
        with Session(self.engine) as s, s.begin():
            row = s.scalars(select(ConceptRow).where(ConceptRow.name == name)).first()
            if row is None:
                row = ConceptRow(name=name)
                s.add(row)
            row.weights = np.asarray(classifier.weights, np.float32).tobytes()
            row.bias = float(classifier.bias)
            row.updated_at = dt.datetime.now(dt.timezone.utc)
            s.flush()
            s.execute(delete(ConceptExample).where(ConceptExample.concept_id == row.id))
            if examples:
                rows = [{"concept_id": row.id, "item_id": i, "liked": v} for i, v in examples.items()]
                s.execute(insert(ConceptExample), rows)
            s.execute(delete(Tag).where(Tag.source == SOURCE, Tag.label == name))
            if members:
                rows = [
                    {"item_id": i, "label": name, "score": p, "source": SOURCE} for i, p in members.items()
                ]
                s.execute(insert(Tag), rows)
        return self.summary(name)

    def forget(self, name: str) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.scalars(select(ConceptRow).where(ConceptRow.name == name)).first()
            if row is None:
                raise self._unknown(name)
            s.execute(delete(Tag).where(Tag.source == SOURCE, Tag.label == name))
            s.delete(row)

    def _unknown(self, name: str) -> NotFoundError:
        names = self.names()
        known = f"this index has {', '.join(map(repr, names))}" if names else "none is taught yet"
        return NotFoundError(f"no concept {name!r}: {known} (mmsearch concept teach)")


def tag_new(s: Session, pictures: Mapping[int, np.ndarray]) -> None:
    """Score items as they are written (item id -> its mean picture vector, unit) with every concept, in
    the writer's transaction `s`, and tag those each concept holds; a file written again is scored again."""
    if not pictures:
        return
    concepts = s.execute(select(ConceptRow.name, ConceptRow.weights, ConceptRow.bias)).all()
    if not concepts:  # then no concept tags either: forgetting a concept deletes its tags
        return
    ids = list(pictures)
    s.execute(delete(Tag).where(Tag.source == SOURCE, Tag.item_id.in_(ids)))
    vectors = np.stack([pictures[i] for i in ids])
    rows = []
    for name, weights, bias in concepts:
        probability = Classifier(np.frombuffer(weights, np.float32), bias).probability(vectors)
        rows += [
            {"item_id": i, "label": name, "score": float(p), "source": SOURCE}
            for i, p in zip(ids, probability, strict=True)
            if p >= MEMBER
        ]
    if rows:
        s.execute(insert(Tag), rows)
