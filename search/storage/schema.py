"""The catalog's tables (items, their segments with stored vectors, typed fields, keywords, tags, state)
and the records written into them. The Alembic versions in migrations/ build these tables step by step;
catalog.py reads and writes them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mmsearch.hits import source

if TYPE_CHECKING:
    from mmsearch.encode.faces import Face

# 64-bit ids everywhere but SQLite, where only INTEGER PRIMARY KEY is the rowid that AUTOINCREMENT needs
# (SQLite integers are 64-bit anyway).
Id = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused: API links stay unambiguous
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    uri: Mapped[str] = mapped_column(String(4096), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict | None] = mapped_column(JSON)  # what the indexer found: duration, codecs, ...
    fields: Mapped[dict | None] = mapped_column(JSON)  # what the user gave: a manifest row's typed values
    indexed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = {"sqlite_autoincrement": True}  # a reused id would hide a changed vector from FAISS
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("items.id", ondelete="CASCADE"), index=True)
    space: Mapped[str] = mapped_column(String(16), index=True)
    t_start: Mapped[float | None] = mapped_column(Float)
    t_end: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)  # JPEG of a video keyframe
    words: Mapped[list | None] = mapped_column(JSON)  # speech: [[start, end, word], ...] in seconds
    written: Mapped[list | None] = mapped_column(
        JSON
    )  # text read in a picture: [[x0, y0, x1, y1, line, score]]


class ItemField(Base):
    """One user field of an item, typed: numbers in `num` (compared as numbers), the rest in `text`."""

    __tablename__ = "item_fields"
    __table_args__ = (Index("ix_item_fields_name_num", "name", "num"),)
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    num: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)


class Keywords(Base):
    """An item's words for full-text search: file name, transcripts, titles, text fields. Indexed by
    FTS5 on SQLite and a GIN tsvector index on PostgreSQL (migration 0004)."""

    __tablename__ = "keywords"
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Tag(Base):
    """A label on an item with its score, e.g. from zero-shot classification; filterable as `tag`."""

    __tablename__ = "tags"
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)  # who gave it, e.g. "zero-shot"
    label: Mapped[str] = mapped_column(String(256), primary_key=True, index=True)
    score: Mapped[float] = mapped_column(Float)


class Person(Base):
    """A person: faces grouped as files arrive (storage/people.py), named and hidden by the user."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256), index=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)


class FaceRow(Base):
    """A face found in a picture or a video's keyframe (its segment says which, and when): its box in the
    file's pixels, its vector (search/encode/faces.py), how good a look it gives, and whose it is."""

    __tablename__ = "faces"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("items.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int] = mapped_column(Id, ForeignKey("segments.id", ondelete="CASCADE"), index=True)
    box: Mapped[list] = mapped_column(JSON)  # [x0, y0, x1, y1]
    score: Mapped[float] = mapped_column(Float)
    size: Mapped[int] = mapped_column(Integer)
    sharpness: Mapped[float] = mapped_column(Float)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    person_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("people.id", ondelete="SET NULL"), index=True
    )


class FaceRefusal(Base):
    """A face the user took out of a person ("not Alice"): it never joins that person again."""

    __tablename__ = "face_refusals"
    face_id: Mapped[int] = mapped_column(Id, ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(Id, ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)


class ConceptRow(Base):
    """A concept taught by examples (storage/concepts.py): a linear classifier over picture vectors, its
    members tagged (source "concept") and `concept = "name"` in a filter."""

    __tablename__ = "concepts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    weights: Mapped[bytes] = mapped_column(LargeBinary)  # float32, one per picture-space dimension
    bias: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ConceptExample(Base):
    """An item the user marked as a concept's (liked) or not (disliked)."""

    __tablename__ = "concept_examples"
    concept_id: Mapped[int] = mapped_column(
        Id, ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    liked: Mapped[bool] = mapped_column(Boolean)


class StackRow(Base):
    """Pictures of one moment or copies of one picture (storage/stacks.py), shown as one hit: its best
    shot, measured or picked by the user."""

    __tablename__ = "stacks"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    best_item: Mapped[int | None] = mapped_column(Id, ForeignKey("items.id", ondelete="SET NULL"))
    picked: Mapped[bool] = mapped_column(Boolean, default=False)  # the user chose the best shot


class StackMember(Base):
    __tablename__ = "stack_members"
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    stack_id: Mapped[int] = mapped_column(Id, ForeignKey("stacks.id", ondelete="CASCADE"), index=True)


class State(Base):
    """Key-value state; `generation` grows with every committed write, so readers see change cheaply."""

    __tablename__ = "state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class KnownFile:
    id: int
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str


@dataclass
class SegmentRecord:
    """One segment as the indexer makes it and the catalog stores it: its vector space, where in the file
    it is, what it shows or says, and, once encoded, its own vector. `source` names where a match on it
    is: seen, said, written or described (search/hits.py)."""

    space: str
    t_start: float | None = None
    t_end: float | None = None
    text: str | None = None
    thumbnail: bytes | None = None  # a keyframe's JPEG
    words: list | None = None  # speech: [[start, end, word], ...] in seconds
    written: list | None = None  # text read in a picture: [[x0, y0, x1, y1, line, score], ...]
    vector: np.ndarray | None = None  # as wide as its space
    faces: list[Face] = field(default_factory=list)  # faces seen in a picture or keyframe (faces table)

    @property
    def source(self) -> str:
        return source(self.space, self.t_start, self.written)

    def columns(self) -> dict:
        """Its row in the segments table, but the vector and the item: what it has, so what it lacks is
        SQL NULL (a JSON column would store None as the JSON text 'null')."""
        values = {
            "space": self.space,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "text": self.text,
            "thumbnail": self.thumbnail,
            "words": self.words,
            "written": self.written,
        }
        return {name: value for name, value in values.items() if value is not None}


@dataclass
class ItemRecord:
    """One file's outcome, ready to write: vectors for an indexed file, an error for a failed one."""

    uri: str
    kind: str
    size: int
    mtime_ns: int
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    meta: dict | None = None
    fields: dict | None = None  # user metadata (a manifest row): str, int, float or bool values
    segments: list[SegmentRecord] = field(default_factory=list)  # each with its vector
    keywords: list[str] = field(default_factory=list)  # more words full text finds it by (OCR repaired)


@dataclass(frozen=True)
class WriteResult:
    """What the vector index must do after a committed batch."""

    added_ids: np.ndarray
    added_vectors: list[np.ndarray]  # one per added id: the spaces' widths differ
    added_spaces: list[str]
    removed_ids: np.ndarray
    generation: int
