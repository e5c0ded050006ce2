"""Faces grouped into people, as files arrive: a new face joins the person it is closest to, or starts one.

A face joins a person when its nearest face there is within JOIN and most of that person's faces lie
within SAME (dlib's own same-person distance, search/encode/faces.py): one close face alone does not
chain two people together, and a person grows one face at a time, without clustering everything again.
A person is listed once it holds MIN_FACES faces, or has a name. What a user says is kept: a name, a
merge, a hidden person, a face taken out of a person ("not Alice": that face never joins Alice again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from mmsearch.encode.faces import CHIP_PX
from mmsearch.errors import InvalidQueryError, NotFoundError
from mmsearch.storage.schema import FaceRefusal, FaceRow, Item, Person

JOIN = 0.5  # the nearest face of the person, at most (Euclidean, dlib's 128-d space)
SAME = 0.6  # dlib's threshold: two faces of one person lie closer than this
AGREE = 0.5  # the share of the person's faces that must lie within SAME
MIN_FACES = 2  # faces before an unnamed person is listed


@dataclass(frozen=True)
class PersonSummary:
    id: int
    name: str | None
    faces: int
    items: int
    best_face: int  # the person's best look (People._best_faces): their picture
    best_item: int  # the file it is in
    hidden: bool


def vector_of(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, np.float32)


def closest(vector: np.ndarray, people: dict[int, np.ndarray], refused: set[int] = frozenset()) -> int | None:
    """The person `vector` joins among `people` (id -> their faces' vectors), or None: a new person."""
    best, best_mean = None, np.inf
    for person, faces in people.items():
        if person in refused:
            continue
        distances = np.linalg.norm(faces - vector, axis=1)
        if distances.min() < JOIN and np.mean(distances < SAME) >= AGREE and distances.mean() < best_mean:
            best, best_mean = person, float(distances.mean())
    return best


def _stacked(s: Session, q: Select) -> dict:
    """The faces' vectors of (key, vector) rows, stacked by key: each person's, by id or by name."""
    faces: dict = {}
    for key, blob in s.execute(q):
        faces.setdefault(key, []).append(vector_of(blob))
    return {key: np.stack(v) for key, v in faces.items()}


def place(s: Session, face_ids: Sequence[int]) -> None:
    """Put the new faces into people, in the writer's transaction (storage/catalog.py, `write`)."""
    if not face_ids:
        return
    grouped = _stacked(s, select(FaceRow.person_id, FaceRow.vector).where(FaceRow.person_id.is_not(None)))
    refusals: dict[int, set[int]] = {}
    for face, person in s.execute(select(FaceRefusal.face_id, FaceRefusal.person_id)):
        refusals.setdefault(face, set()).add(person)
    for face, blob in s.execute(select(FaceRow.id, FaceRow.vector).where(FaceRow.id.in_(face_ids))).all():
        vector = vector_of(blob)
        person = closest(vector, grouped, refusals.get(face, set()))
        if person is None:
            person = s.scalar(insert(Person).returning(Person.id), {"hidden": False})
            grouped[person] = vector[None]
        else:
            grouped[person] = np.vstack([grouped[person], vector])
        s.execute(update(FaceRow).where(FaceRow.id == face).values(person_id=person))


@dataclass(frozen=True)
class FaceSeen:
    id: int
    item_id: int
    segment_id: int  # the picture's, or the keyframe's in a video
    box: tuple[int, int, int, int]  # in the file's own pixels
    person_id: int | None


class People:
    """The people of one catalog: listed, named, merged, hidden, a face moved out; all face data dropped."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def listed(self, everyone: bool = False) -> list[PersonSummary]:
        """The people worth showing, most faces first: named, or with MIN_FACES faces, and not hidden
        (`everyone`: all of them)."""
        faces = func.count(FaceRow.id).label("faces")
        items = func.count(func.distinct(FaceRow.item_id)).label("items")
        q = (
            select(Person.id, Person.name, Person.hidden, faces, items)
            .join(FaceRow, FaceRow.person_id == Person.id)
            .join(Item, Item.id == FaceRow.item_id)
            .group_by(Person.id, Person.name, Person.hidden)
            .order_by(faces.desc(), Person.id)
        )
        with Session(self.engine) as s:
            rows = s.execute(q).all()
            shown = [r for r in rows if everyone or (not r.hidden and (r.name or r.faces >= MIN_FACES))]
            best = self._best_faces(s, [r.id for r in shown])
        return [PersonSummary(r.id, r.name, r.faces, r.items, *best[r.id], r.hidden) for r in shown]

    @staticmethod
    def _best_faces(s: Session, people: list[int]) -> dict[int, tuple[int, int]]:
        """Each person's best look (face, item): the largest face up to the size the network reads
        (CHIP_PX), the sharpest of those."""
        q = select(FaceRow.person_id, FaceRow.id, FaceRow.item_id, FaceRow.size, FaceRow.sharpness).where(
            FaceRow.person_id.in_(people)
        )
        best: dict[int, tuple] = {}
        for person, face, item, size, sharpness in s.execute(q):
            look = (min(size, CHIP_PX), sharpness)
            if person not in best or look > best[person][1]:
                best[person] = ((face, item), look)
        return {p: b[0] for p, b in best.items()}

    def face(self, face: int) -> FaceSeen:
        with Session(self.engine) as s:
            row = s.get(FaceRow, face) if 0 < face < 2**63 else None
            if row is None:
                raise NotFoundError(f"no face {face}")
            return FaceSeen(row.id, row.item_id, row.segment_id, tuple(row.box), row.person_id)

    def named_like(self, vector: np.ndarray) -> str | None:
        """The name of the named person a face joins by the grouping's rule (`closest`), or None."""
        q = select(Person.name, FaceRow.vector).join(FaceRow, FaceRow.person_id == Person.id)
        with Session(self.engine) as s:
            faces = _stacked(s, q.where(Person.name.is_not(None)))
        names = list(faces)
        person = closest(vector, {i: faces[n] for i, n in enumerate(names)})
        return None if person is None else names[person]

    def of_files(self, uris: list[str]) -> dict[str, int]:
        """The person of each file's largest face, for the files with one."""
        q = (
            select(Item.uri, FaceRow.person_id, FaceRow.size)
            .join(FaceRow, FaceRow.item_id == Item.id)
            .where(Item.uri.in_(uris), FaceRow.person_id.is_not(None))
        )
        with Session(self.engine) as s:
            largest: dict[str, tuple[int, int]] = {}
            for uri, person, size in s.execute(q):
                if uri not in largest or size > largest[uri][1]:
                    largest[uri] = (person, size)
        return {uri: person for uri, (person, _) in largest.items()}

    def names(self) -> list[str]:
        """Every name given to a person (search/query/who.py finds them in a query's words)."""
        with Session(self.engine) as s:
            return list(s.scalars(select(Person.name).where(Person.name.is_not(None)).distinct()))

    def name(self, person: int, name: str | None) -> None:
        """Name a person (or take the name away); a name another person has merges the two."""
        name = " ".join((name or "").split()) or None
        if name is not None and ('"' in name or not any(c.isalnum() for c in name)):
            raise InvalidQueryError(f"a person's name needs a letter or digit and no double quote: {name!r}")
        with Session(self.engine) as s, s.begin():
            self._person(s, person)
            same = func.lower(Person.name) == func.lower(name or "")
            other = s.scalar(select(Person.id).where(same, Person.id != person))
            s.execute(update(Person).where(Person.id == person).values(name=name or None))
            if other is not None:
                self._merge(s, other, person)

    def merge(self, into: int, other: int) -> None:
        """All of `other`'s faces become `into`'s."""
        with Session(self.engine) as s, s.begin():
            self._person(s, into), self._person(s, other)
            self._merge(s, into, other)

    @staticmethod
    def _merge(s: Session, into: int, other: int) -> None:
        s.execute(update(FaceRow).where(FaceRow.person_id == other).values(person_id=into))
        s.execute(update(FaceRefusal).where(FaceRefusal.person_id == other).values(person_id=into))
        s.execute(delete(Person).where(Person.id == other))

    def hide(self, person: int, hidden: bool = True) -> None:
        with Session(self.engine) as s, s.begin():
            self._person(s, person)
            s.execute(update(Person).where(Person.id == person).values(hidden=hidden))

    def move_out(self, face: int) -> int:
        """ "Not this person": the face leaves its person for a new one of its own, and never joins that
        person again; returns the new person's id."""
        with Session(self.engine) as s, s.begin():
            was = s.scalar(select(FaceRow.person_id).where(FaceRow.id == face))
            if was is None:
                raise NotFoundError(f"no face {face}")
            s.execute(insert(FaceRefusal), {"face_id": face, "person_id": was})
            person = s.scalar(insert(Person).returning(Person.id), {"hidden": False})
            s.execute(update(FaceRow).where(FaceRow.id == face).values(person_id=person))
            return person

    def forget(self) -> int:
        """Delete every face and person; returns how many faces there were."""
        with Session(self.engine) as s, s.begin():
            n = s.scalar(select(func.count(FaceRow.id))) or 0
            s.execute(delete(FaceRefusal))
            s.execute(delete(FaceRow))
            s.execute(delete(Person))
            return n

    @staticmethod
    def _person(s: Session, person: int) -> None:
        if s.get(Person, person) is None:
            raise NotFoundError(f"no person {person}")
