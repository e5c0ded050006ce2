"""The SQL catalog: items (source files), segments (units that own a vector) and their stored vectors.

The catalog plus its stored vectors is the durable truth; FAISS files are a cache rebuilt from it.
SQLite by default (WAL journal, synchronous=FULL: a committed batch survives a process kill and a power
cut), any SQLAlchemy URL by setting. The schema is versioned with Alembic (search/storage/migrations).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    column,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

if TYPE_CHECKING:
    from mmsearch.encode.faces import Face

from mmsearch.hits import FAILED, IMAGE_SPACE, INDEXED, SPACES, TEXT_SPACE, HitRow
from mmsearch.storage import concepts, people, stacks
from mmsearch.storage.layout import escape_like
from mmsearch.storage.schema import (
    FaceRow,
    Item,
    ItemField,
    ItemRecord,
    Keywords,
    KnownFile,
    Segment,
    SegmentRecord,
    State,
    Tag,
    WriteResult,
)

MIGRATIONS = Path(__file__).with_name("migrations")
DAY = 10  # an ISO date's characters that name its day
COUNTED = {  # the filters' built-in fields a facet counts by value (search/query/filters.py)
    "kind": Item.kind,
    "path": Item.uri,
    "size": Item.size,
    "width": Item.width,
    "height": Item.height,
    "duration": Item.meta["duration"].as_float(),
}
MATH = {"sin": math.sin, "cos": math.cos, "asin": math.asin, "sqrt": math.sqrt, "radians": math.radians}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    try:  # the place filters' distances (search/query/filters.py); SQLite builds without them exist
        cur.execute("SELECT sin(0), cos(0), asin(0), sqrt(0), radians(0)")
    except sqlite3.OperationalError:
        for name, fn in MATH.items():
            dbapi_conn.create_function(name, 1, fn, deterministic=True)
    cur.close()


def _stored(segment: SegmentRecord) -> bytes:
    if segment.vector is None:  # the transaction rolls back: nothing of the batch is kept
        raise ValueError(f"a {segment.space} segment came to the catalog without its vector")
    return np.asarray(segment.vector, np.float32).tobytes()


def _face_row(item_id: int, segment_id: int, face: Face) -> dict:
    return {
        "item_id": item_id,
        "segment_id": segment_id,
        "box": list(face.box),
        "score": round(face.score, 3),
        "size": face.size,
        "sharpness": round(face.sharpness, 1),
        "vector": np.asarray(face.vector, np.float32).tobytes(),
    }


def _keywords(rec: ItemRecord) -> str:
    """What full-text search matches an item by: its file name, its transcripts, titles and text read,
    its text fields (a product's SKU, category, ...)."""
    words = [Path(rec.uri.split("#")[-1]).name, *(seg.text or "" for seg in rec.segments)]
    words += rec.keywords
    words += [str(v) for v in (rec.fields or {}).values() if isinstance(v, str)]
    return " ".join(w for w in words if w)


def _typed(item_id: int, name: str, value: object) -> dict:
    """A field row: numbers (and booleans, as 0/1) in `num`, everything else as text."""
    if isinstance(value, bool | int | float):
        return {"item_id": item_id, "name": name, "num": float(value), "text": None}
    return {"item_id": item_id, "name": name, "num": None, "text": str(value)}


def _normalised(ids: list[int], means: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.stack(means).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return np.asarray(ids, np.int64), vectors


class Catalog:
    def __init__(self, url: str):
        self.url = url
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrate()

    def _migrate(self) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    def generation(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(State.value).where(State.key == "generation")) or 0

    def sort_values(self, name: str, item_ids: Sequence[int]) -> dict[int, float | str]:
        """Each item's value of a field, or its file's `modified` time or `size`, where it has one."""
        ids = [int(i) for i in item_ids]
        if name in ("modified", "size"):
            column = Item.mtime_ns if name == "modified" else Item.size
            q = select(Item.id, column, literal(None)).where(Item.id.in_(ids))
        else:
            q = select(ItemField.item_id, ItemField.num, ItemField.text)
            q = q.where(ItemField.name == name, ItemField.item_id.in_(ids))
        with Session(self.engine) as s:
            rows = s.execute(q).all()
        return {i: num if num is not None else text for i, num, text in rows if (num, text) != (None, None)}

    def facet(self, name: str, prefix: int | None = None, limit: int = 100) -> list[tuple[float | str, int]]:
        """How many indexed items have each value of a field, most first (ties by value); with `prefix`,
        text values counted by their first characters: an ISO date's year (4) or month (7), in time order.
        The built-in fields of the filters count too: kind, path, size, width, height, duration, tag, and
        the dates indexed and modified (per day unless `prefix` says otherwise)."""
        if name in COUNTED or name == "tag":
            return self._built_in_facet(name, limit)
        if name in ("indexed", "modified"):
            return self._dated_facet(name, prefix or DAY, limit)
        count = func.count().label("n")
        if prefix:
            period = func.substr(ItemField.text, 1, prefix)
            q, values, order = select(period, count), (period,), (period,)
        else:
            values = (ItemField.num, ItemField.text)
            q, order = select(*values, count), (count.desc(), *values)
        q = (
            q.join(Item, Item.id == ItemField.item_id)
            .where(ItemField.name == name, Item.status == INDEXED)
            .group_by(*values)
            .order_by(*order)
            .limit(limit)
        )
        with Session(self.engine) as s:
            rows = s.execute(q).all()
        return [
            (next((v for v in row[:-1] if v is not None), None), row[-1])
            for row in rows
            if any(v is not None for v in row[:-1])
        ]

    def _built_in_facet(self, name: str, limit: int) -> list[tuple[float | str, int]]:
        count = func.count().label("n")
        value = Tag.label if name == "tag" else COUNTED[name]
        q = select(value, count).select_from(Item)
        if name == "tag":
            q = q.join(Tag, Tag.item_id == Item.id)
        q = q.where(Item.status == INDEXED, value.is_not(None))
        with Session(self.engine) as s:
            rows = s.execute(q.group_by(value).order_by(count.desc(), value).limit(limit)).all()
        return [(v if isinstance(v, str) else float(v), n) for v, n in rows]

    def _dated_facet(self, name: str, prefix: int, limit: int) -> list[tuple[float | str, int]]:
        """When items were indexed or last modified, per period (the ISO date's first characters), in time
        order; bucketed here, as SQLite and PostgreSQL write dates differently."""
        column = Item.indexed_at if name == "indexed" else Item.mtime_ns
        with Session(self.engine) as s:
            values = s.scalars(select(column).where(Item.status == INDEXED, column.is_not(None))).all()
        if name == "modified":
            values = [dt.datetime.fromtimestamp(v / 1e9, dt.timezone.utc) for v in values]
        periods = Counter(v.date().isoformat()[:prefix] for v in values)
        return sorted(periods.items())[:limit]

    def field_examples(self) -> dict[str, float | str]:
        """Each user field (manifest column) with a value some item has: its mean if numeric, else the
        first text in order."""
        q = select(ItemField.name, func.avg(ItemField.num), func.min(ItemField.text)).group_by(ItemField.name)
        with Session(self.engine) as s:
            return {
                name: num if num is not None else text
                for name, num, text in s.execute(q.order_by(ItemField.name))
            }

    def common_root(self) -> str:
        """The folder every file in the catalog is under, ending in "/" ("" when there are none): the
        smallest and largest uri share what every uri between them shares."""
        with Session(self.engine) as s:
            low, high = s.execute(select(func.min(Item.uri), func.max(Item.uri))).one()
        if low is None:
            return ""
        folder = os.path.dirname(low) if low == high else os.path.commonpath([low, high])
        return folder.rstrip("/") + "/"

    def known_files(self) -> dict[str, KnownFile]:
        q = select(Item.uri, Item.id, Item.size, Item.mtime_ns, Item.content_hash, Item.status)
        with Session(self.engine) as s:
            return {
                r.uri: KnownFile(r.id, r.size, r.mtime_ns, r.content_hash, r.status) for r in s.execute(q)
            }

    def write(
        self,
        records: Sequence[ItemRecord],
        touched: Sequence[tuple[int, int]] = (),
        removed_uris: Sequence[str] = (),
    ) -> WriteResult:
        """Apply one batch in one transaction: the new segments with their vectors, and the ids of the
        segments that no longer exist. `touched` are (item id, mtime_ns) of files whose content hash
        proved unchanged."""
        now = dt.datetime.now(dt.timezone.utc)
        new_ids: list[int] = []
        new_vecs: list[np.ndarray] = []
        new_spaces: list[str] = []
        pictures: dict[int, np.ndarray] = {}  # new items' mean picture vectors, for concepts and stacks
        shots: list[stacks.Shot] = []
        with Session(self.engine) as s, s.begin():
            gone = self._drop_segments(s, [r.uri for r in records] + list(removed_uris))
            if removed_uris:
                s.execute(delete(Item).where(Item.uri.in_(removed_uris)))
            for item_id, mtime_ns in touched:
                s.execute(update(Item).where(Item.id == item_id).values(mtime_ns=mtime_ns))
            for rec in records:
                item_id = self._upsert_item(s, rec, now)
                if rec.segments:
                    rows = [
                        {"item_id": item_id, "vector": _stored(seg), **seg.columns()} for seg in rec.segments
                    ]
                    ids = list(
                        s.scalars(insert(Segment).returning(Segment.id, sort_by_parameter_order=True), rows)
                    )
                    new_ids.extend(ids)
                    faces = [
                        _face_row(item_id, i, face)
                        for i, seg in zip(ids, rec.segments, strict=True)
                        for face in seg.faces
                    ]
                    if faces:
                        ordered = insert(FaceRow).returning(FaceRow.id, sort_by_parameter_order=True)
                        people.place(s, list(s.scalars(ordered, faces)))
                    new_vecs.extend(np.asarray(seg.vector, np.float32) for seg in rec.segments)
                    new_spaces.extend(seg.space for seg in rec.segments)
                    seen = [np.asarray(g.vector, np.float32) for g in rec.segments if g.space == IMAGE_SPACE]
                    if seen:
                        pictures[item_id] = _normalised([item_id], [np.mean(seen, axis=0)])[1][0]
                    if seen and rec.kind == "image":
                        when = stacks.when_of(rec.fields, rec.mtime_ns)
                        phash = stacks.phash_of(rec.meta)
                        shots.append(stacks.Shot(item_id, when, phash, rec.content_hash))
            concepts.tag_new(s, pictures)
            if shots and stacks.stacking(s):
                stacks.place(s, shots)
            generation = self._bump(s)
        return WriteResult(
            np.asarray(new_ids, np.int64), new_vecs, new_spaces, np.asarray(gone, np.int64), generation
        )

    def _drop_segments(self, s: Session, uris: Sequence[str]) -> list[int]:
        if not uris:
            return []
        item_ids = select(Item.id).where(Item.uri.in_(uris))
        gone = list(s.scalars(select(Segment.id).where(Segment.item_id.in_(item_ids))))
        if gone:
            s.execute(delete(Segment).where(Segment.id.in_(gone)))
        return gone

    @staticmethod
    def _upsert_item(s: Session, rec: ItemRecord, now: dt.datetime) -> int:
        values = {
            "kind": rec.kind,
            "size": rec.size,
            "mtime_ns": rec.mtime_ns,
            "content_hash": rec.content_hash,
            "width": rec.width,
            "height": rec.height,
            "status": FAILED if rec.error else INDEXED,
            "error": rec.error,
            "meta": rec.meta,
            "fields": rec.fields,
            "indexed_at": now,
        }
        item_id = s.scalar(select(Item.id).where(Item.uri == rec.uri))
        if item_id is None:
            item_id = s.scalar(insert(Item).returning(Item.id), {"uri": rec.uri, **values})
        else:
            s.execute(update(Item).where(Item.id == item_id).values(**values))
            s.execute(delete(ItemField).where(ItemField.item_id == item_id))
        rows = [_typed(item_id, k, v) for k, v in (rec.fields or {}).items() if v is not None]
        if rows:
            s.execute(insert(ItemField), rows)
        s.execute(delete(Keywords).where(Keywords.item_id == item_id))
        if not rec.error:
            s.execute(insert(Keywords), {"item_id": item_id, "text": _keywords(rec)})
        return item_id

    @staticmethod
    def _bump(s: Session) -> int:
        row = s.get(State, "generation")
        if row is None:
            row = State(key="generation", value=0)
            s.add(row)
        row.value += 1
        return row.value

    def all_segment_ids(self) -> np.ndarray:
        with Session(self.engine) as s:
            return np.fromiter(s.scalars(select(Segment.id)), np.int64)

    def segment_ids_by_space(self) -> dict[str, np.ndarray]:
        q = select(Segment.space, Segment.id).order_by(Segment.space, Segment.id)
        out: dict[str, list[int]] = {space: [] for space in SPACES}
        with Session(self.engine) as s:
            for space, seg_id in s.execute(q):
                out.setdefault(space, []).append(seg_id)
        return {space: np.asarray(ids, np.int64) for space, ids in out.items()}

    def segment_ids(
        self, kind: str | None = None, path_prefix: str | None = None, where: ColumnElement | None = None
    ) -> np.ndarray:
        """Segments of indexed items that pass the filters; `where` is a condition on Item
        (search/query/filters.py)."""
        q = select(Segment.id).join(Item, Item.id == Segment.item_id).where(Item.status == INDEXED)
        if kind:
            q = q.where(Item.kind == kind)
        if path_prefix:
            q = q.where(Item.uri.like(escape_like(path_prefix) + "%", escape="\\"))
        if where is not None:
            q = q.where(where)
        with Session(self.engine) as s:
            return np.fromiter(s.scalars(q), np.int64)

    def item_segment_ids(self, item_id: int, space: str) -> np.ndarray:
        q = select(Segment.id).where(Segment.item_id == literal(item_id, BigInteger), Segment.space == space)
        with Session(self.engine) as s:
            return np.fromiter(s.scalars(q.order_by(Segment.id)), np.int64)

    def transcript(self, item_id: int) -> list[Segment]:
        """What is said in an item, in time order (its speech segments)."""
        q = select(Segment).where(
            Segment.item_id == literal(item_id, BigInteger),
            Segment.space == "text",
            Segment.t_start.is_not(None),
        )
        with Session(self.engine) as s:
            return list(s.scalars(q.order_by(Segment.t_start, Segment.id)))

    def vectors(
        self, ids: Sequence[int] | None = None, chunk: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stored vectors as (ids, (n, dim) float32), in id order, chunk by chunk."""
        wanted = None if ids is None else sorted(int(i) for i in ids)
        last = -1
        with Session(self.engine) as s:
            while True:
                q = select(Segment.id, Segment.vector).order_by(Segment.id).limit(chunk)
                if wanted is None:
                    rows = s.execute(q.where(Segment.id > last)).all()
                else:
                    part, wanted = wanted[:chunk], wanted[chunk:]
                    rows = s.execute(q.where(Segment.id.in_(part))).all() if part else []
                if not rows:
                    return
                last = rows[-1].id
                yield (
                    np.array([r.id for r in rows], np.int64),
                    np.stack([np.frombuffer(r.vector, np.float32) for r in rows]),
                )

    def hits(self, segment_ids: Sequence[int]) -> dict[int, HitRow]:
        """Catalog rows of indexed segments; ids no longer in the catalog are simply absent."""
        if not len(segment_ids):
            return {}
        q = (
            select(
                Segment.id,
                Segment.item_id,
                Item.uri,
                Item.kind,
                Item.width,
                Item.height,
                Segment.space,
                Segment.t_start,
                Segment.t_end,
                Segment.text,
                Segment.thumbnail.is_not(None),
                Segment.words,
                Item.meta["duration"].as_float(),
                Segment.written,
                Item.status,
            )
            .join(Item, Item.id == Segment.item_id)
            .where(Segment.id.in_([int(i) for i in segment_ids]))
        )
        # The status is checked here, not in SQL: given `status = ?`, SQLite walks the status index
        # (every item) instead of looking the segments up by id, 2 s instead of 1 ms at 100k items.
        with Session(self.engine) as s:
            return {r[0]: HitRow(*r[:-1]) for r in s.execute(q) if r[-1] == INDEXED}

    def word_candidates(self, words: Sequence[str], limit: int) -> np.ndarray:
        """Ids of transcript segments of indexed items that contain any of the words (case-insensitive).
        A scan with LIKE: full-text indexes (FTS5, PostgreSQL tsvector) are the way up from here."""
        if not words:
            return np.zeros(0, np.int64)
        lowered = func.lower(Segment.text)
        q = (
            select(Segment.id)
            .join(Item, Item.id == Segment.item_id)
            .where(Segment.space == TEXT_SPACE, Item.status == INDEXED)
            .where(or_(*(lowered.like(f"%{escape_like(w)}%", escape="\\") for w in words)))
            .order_by(Segment.id)
            .limit(limit)
        )
        with Session(self.engine) as s:
            return np.fromiter(s.scalars(q), np.int64)

    def picture_vectors(self, chunk: int = 2048) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(item ids, (n, dim) vectors): each indexed item's mean picture vector (its image, its
        keyframes, its product photos), normalised; items without pictures are left out."""
        q = (
            select(Segment.item_id, Segment.vector)
            .join(Item, Item.id == Segment.item_id)
            .where(Segment.space == IMAGE_SPACE, Item.status == INDEXED)
            .order_by(Segment.item_id, Segment.id)
        )
        ids: list[int] = []
        means: list[np.ndarray] = []
        current, parts = None, []
        with Session(self.engine) as s:
            for item_id, blob in s.execute(q.execution_options(yield_per=chunk)):
                if item_id != current and parts:
                    ids.append(current)
                    means.append(np.mean(parts, axis=0))
                    parts = []
                    if len(ids) >= chunk:
                        yield _normalised(ids, means)
                        ids, means = [], []
                current = item_id
                parts.append(np.frombuffer(blob, np.float32))
        if parts:
            ids.append(current)
            means.append(np.mean(parts, axis=0))
        if ids:
            yield _normalised(ids, means)

    def set_tags(self, tags: dict[int, list[tuple[str, float]]], source: str) -> None:
        """Replace the tags that `source` gave these items (one transaction)."""
        with Session(self.engine) as s, s.begin():
            s.execute(delete(Tag).where(Tag.source == source, Tag.item_id.in_(list(tags))))
            rows = [
                {"item_id": item_id, "label": label, "score": float(score), "source": source}
                for item_id, labels in tags.items()
                for label, score in labels
            ]
            if rows:
                s.execute(insert(Tag), rows)

    def tags(self, item_id: int) -> list[tuple[str, float, str]]:
        q = select(Tag.label, Tag.score, Tag.source).where(Tag.item_id == literal(item_id, BigInteger))
        with Session(self.engine) as s:
            return [tuple(r) for r in s.execute(q.order_by(Tag.score.desc()))]

    def keyword_search(self, query: str, limit: int, where: ColumnElement | None = None) -> list[int]:
        """Item ids whose words match any of the query's words, best first (BM25 on SQLite, ts_rank on
        PostgreSQL); quoted phrases stay phrases, so "SKU-0042" matches that SKU only."""
        words = [w for w in re.findall(r'"[^"]+"|\S+', query) if w.strip('"').strip()]
        if not words:
            return []
        if self.engine.dialect.name == "sqlite":
            match = " OR ".join('"' + w.strip('"').replace('"', '""') + '"' for w in words)
            fts = table("keywords_fts", column("rowid"))
            q = (
                select(Item.id)
                .join(fts, fts.c.rowid == Item.id)
                .where(literal_column("keywords_fts").op("MATCH")(match))
                .order_by(func.bm25(literal_column("keywords_fts")), Item.id)
            )
        else:
            vector = func.to_tsvector("simple", Keywords.text)
            tsquery = func.phraseto_tsquery("simple", words[0].strip('"'))
            for w in words[1:]:
                tsquery = tsquery.op("||")(func.phraseto_tsquery("simple", w.strip('"')))
            q = (
                select(Item.id)
                .join(Keywords, Keywords.item_id == Item.id)
                .where(vector.op("@@")(tsquery))
                .order_by(func.ts_rank(vector, tsquery).desc(), Item.id)
            )
        q = q.where(Item.status == INDEXED)
        if where is not None:
            q = q.where(where)
        with Session(self.engine) as s:
            return list(s.scalars(q.limit(limit)))

    def first_segments(self, item_ids: Sequence[int]) -> dict[int, int]:
        """Each item's first segment id (pictures before words): where a keyword-only hit points."""
        q = (
            select(Segment.item_id, func.min(Segment.id))
            .where(Segment.item_id.in_([int(i) for i in item_ids]))
            .group_by(Segment.item_id)
        )
        with Session(self.engine) as s:
            return dict(s.execute(q).all())

    def thumbnail(self, segment_id: int) -> bytes | None:
        """The stored keyframe JPEG of a segment of an indexed item."""
        q = (
            select(Segment.thumbnail)
            .join(Item, Item.id == Segment.item_id)
            .where(Segment.id == literal(segment_id, BigInteger), Item.status == INDEXED)
        )
        with Session(self.engine) as s:
            return s.scalar(q)

    def first_keyframe(self, item_id: int) -> int | None:
        """The id of an item's first segment with a stored thumbnail (a video's poster frame)."""
        q = (
            select(Segment.id)
            .where(Segment.item_id == literal(item_id, BigInteger), Segment.thumbnail.is_not(None))
            .order_by(Segment.t_start, Segment.id)
            .limit(1)
        )
        with Session(self.engine) as s:
            return s.scalar(q)

    def item(self, item_id: int) -> Item | None:
        # Compared as BIGINT: ids are 32-bit on PostgreSQL, where a larger id must find nothing, not fail.
        q = select(Item).where(Item.id == literal(item_id, BigInteger))
        with Session(self.engine, expire_on_commit=False) as s:
            return s.scalar(q)

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as s:
            by_status = dict(s.execute(select(Item.status, func.count()).group_by(Item.status)).all())
            segments = s.scalar(select(func.count()).select_from(Segment)) or 0
            faces = s.scalar(select(func.count()).select_from(FaceRow)) or 0
        return {
            "indexed": by_status.get(INDEXED, 0),
            "failed": by_status.get(FAILED, 0),
            "segments": segments,
            "faces": faces,
        }

    def failures(self, limit: int = 50) -> list[tuple[str, str]]:
        q = select(Item.uri, Item.error).where(Item.status == FAILED).order_by(Item.uri).limit(limit)
        with Session(self.engine) as s:
            return [(r.uri, r.error or "") for r in s.execute(q)]
