"""One-shot `mmsearch search "text"` without torch, pydantic or SQLAlchemy.

A process that searches once pays more for its imports than for its search: torch and open_clip take
seconds, pydantic and SQLAlchemy tenths. This path loads the index's int8 query tower
(search/encode/query_tower.py), FAISS and the standard library's sqlite3, and ranks as Engine.search_text does
(tests/test_quick.py holds the two equal). It only takes what it can answer that way:
- a text query with no option but -k, --index-dir / -i, --all, --json, --paths and --literal;
- no MMSEARCH_ setting in the environment that can change a text search's hits (so the defaults hold):
  the index folder and the settings of indexing, the server and answers (UNRELATED) may be set;
- an index with a query tower for its model, a SQLite catalog inside it, vector caches as current as
  the catalog, and, where it holds transcripts, its text model's ONNX graph (search/encode/word_tower.py).
A date, a person's name or a city in the words is a filter here as in the engine (Engine.understood): the
same readers (search/query/when.py, which imports dateparser only for what its own patterns do not read,
search/query/who.py, and search/query/place.py's table of cities), the filter written in SQL as
search/query/filters.py writes it.
Both rank by search/query/ranking.py: cohort margins, the word match, moments narrowed to the words said;
the weaker hits are marked at the default cutoff (search/query/relevance.py).
Anything else returns None, and the full command line runs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.defaults import (
    CANDIDATES,
    CATALOG,
    GOOD_MARGIN,
    MAX_K,
    TEXT_GAP,
    IndexSearchDefaults,
    index_dir_in_env,
)
from mmsearch.encode import query_tower, word_tower
from mmsearch.encode.word_tower import OnnxSentences
from mmsearch.hits import IMAGE_SPACE, INDEXED, TEXT_SPACE, Hit, HitRow
from mmsearch.query import place, when, who
from mmsearch.query.fusion import COHORT
from mmsearch.query.ranking import ranked
from mmsearch.query.relevance import mark_weak, named_alone
from mmsearch.query.result import SearchResult
from mmsearch.query.understood import Understood
from mmsearch.storage.layout import FORMAT, MANIFEST, escape_like, vectors_file

if TYPE_CHECKING:
    from mmsearch.storage.vectors import VectorIndex

CHUNK = 10_000  # ids per SQL statement, under SQLite's bound on parameters


@dataclass(frozen=True)
class Query:
    text: str
    k: int = 10
    index_dir: Path | None = None
    as_json: bool = False
    show_all: bool = False
    paths: bool = False
    literal: bool = False


FLAGS = {"--json": "as_json", "--all": "show_all", "--paths": "paths", "--literal": "literal"}


def parse(args: Sequence[str]) -> Query | None:
    """The arguments after `search`, when they are a plain text query; None for anything else."""
    text, k, index_dir, flags = None, 10, None, {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in FLAGS:
            flags[FLAGS[arg]] = True
        elif arg in ("-k", "-i", "--index-dir") and rest:
            value = rest.pop(0)
            if arg == "-k":
                k = _int(value)
            else:
                index_dir = Path(value)
        elif arg.startswith("--index-dir="):
            index_dir = Path(arg.partition("=")[2])
        elif arg.startswith("-k") and len(arg) > 2:
            k = _int(arg[2:])
        elif arg.startswith("-") or text is not None:
            return None
        else:
            text = arg
    if text is None or not text.strip() or "\x00" in text or k is None or not 1 <= k <= MAX_K:
        return None
    return Query(text.strip(), k, index_dir, **flags)


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def search(query: Query, today: dt.date | None = None) -> SearchResult | None:
    """The engine's result for a plain text query, or None when this path cannot tell it; `today`:
    the day relative dates count from (Engine.search's)."""
    start = time.perf_counter()
    folder = query.index_dir or index_dir_in_env()
    manifest = _manifest(folder)
    if manifest is None or not (folder / CATALOG).is_file():
        return None
    model = manifest["model"]
    tower = query_tower.QueryTower.open(folder / query_tower.FOLDER, model["fingerprint"], whole=False)
    if tower is None:
        return None
    try:
        with closing(_read_only(folder / CATALOG)) as db:
            if _folds_or_hides(db):
                return None
            understood = None if query.literal else _understood(db, query.text, today or dt.date.today())
            hits = _search(folder, db, model, tower, query, understood)
    except (sqlite3.Error, OSError, RuntimeError):  # an older schema, a cache being replaced, ...
        return None
    if hits is None:
        return None
    took = (time.perf_counter() - start) * 1000
    return SearchResult.of(query.text, query.k, hits, query.show_all, understood=understood, took_ms=took)


def _folds_or_hides(db: sqlite3.Connection) -> bool:
    """Whether the index keeps stacks or flagged explicit content: the full way folds stacks into one hit
    and leaves the flagged out (Engine.search), which this path does not."""
    stacked = db.execute("select 1 from state where key = 'stacks' and value = 1").fetchone()
    flagged = db.execute("select 1 from item_fields where name = 'explicit' limit 1").fetchone()
    return stacked is not None or flagged is not None


def _manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def _read_only(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout=30000")
    try:  # the place check's distances; SQLite builds without math functions exist (as in Catalog)
        db.execute("SELECT sin(0), cos(0), radians(0)")
    except sqlite3.OperationalError:
        for name, fn in {"sin": math.sin, "cos": math.cos, "radians": math.radians}.items():
            db.create_function(name, 1, fn, deterministic=True)
    return db


def _search(
    folder: Path,
    db: sqlite3.Connection,
    model: dict,
    tower: query_tower.QueryTower,
    query: Query,
    understood: Understood | None,
) -> list[Hit] | None:
    words = None
    if db.execute("SELECT 1 FROM segments WHERE space = ? LIMIT 1", (TEXT_SPACE,)).fetchone():
        from mmsearch.encode.sentences import CLIP  # only where words are indexed: 35 ms

        text_model = model.get("text_model") or {"name": CLIP}
        if text_model["name"] == CLIP:
            return None  # words on the picture model's tower, batched as this path does not
        words = OnnxSentences.open(folder / word_tower.FOLDER, text_model["fingerprint"])
        if words is None:
            return None  # the text model is on torch, or its graph was not kept in the index
    allowed = None if understood is None else _allowed(db, understood)
    if allowed is not None and not len(allowed):
        return []
    from mmsearch.storage.vectors import VectorIndex  # FAISS loads while the towers' sessions start

    row = db.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
    generation = row[0] if row else 0
    dims = {IMAGE_SPACE: model["dim"]} | ({TEXT_SPACE: words.dim} if words else {})
    indexes = {}
    for space, dim in dims.items():
        index, saved_at = VectorIndex.load(vectors_file(folder, space), dim, IndexSearchDefaults(), mmap=True)
        if saved_at != generation:
            return None  # the engine brings the cache up to the catalog first
        indexes[space] = index
    text = understood.text if understood else query.text
    queries = {IMAGE_SPACE: query_tower.unit(tower.encode_texts([text]))[0]}  # Encoder.encode_queries
    cohorts = {IMAGE_SPACE: lambda: query_tower.unit(tower.encode_each(list(COHORT)))}  # encode_lone_queries
    if words:
        queries[TEXT_SPACE] = words.encode([text])[0]  # Encoder.encode_words
        cohorts[TEXT_SPACE] = lambda: words.encode_kept(list(COHORT))  # Encoder.encode_word_cohort
    source = _SqliteSource(db, indexes, cohorts)
    hits = ranked(source, queries, query.k, CANDIDATES, allowed, words=text, calibrate=True)
    return named_alone(mark_weak(hits, GOOD_MARGIN, TEXT_GAP), understood)


def _understood(db: sqlite3.Connection, text: str, today: dt.date) -> Understood | None:
    """Engine.understood: a date where items have taken_at, people by the names given, a city where items
    have GPS fields."""
    has = "SELECT 1 FROM item_fields WHERE name = ? LIMIT 1"
    fields = {name for name in (when.FIELD, *place.FIELDS) if db.execute(has, (name,)).fetchone()}
    dated = when.dated(text, today) if when.FIELD in fields else None
    rest = dated.text if dated else text
    names = [row[0] for row in db.execute("SELECT DISTINCT name FROM people WHERE name IS NOT NULL")]
    people = who.named(rest, names)
    rest = people.text if people else rest
    near = None
    if set(place.FIELDS) <= fields:
        near = place.placed(rest, lambda city: db.execute(NEAR_ONE, _near_args(city)).fetchone() is not None)
    if dated is None and near is None and people is None:
        return None
    return Understood(near.text if near else rest, dated, near, people)


IN_PERIOD = "i.id IN (SELECT item_id FROM item_fields WHERE name = ? AND text {} ?)"
WITH_PERSON = (  # search/query/filters.py's `person = "..."`
    "i.id IN (SELECT f.item_id FROM faces f JOIN people p ON p.id = f.person_id"
    " WHERE lower(p.name) = lower(?))"
)
NEAR = (  # search/query/filters.py's `near` on the GPS fields (_within_km), in SQL
    "i.id IN (SELECT lat.item_id FROM item_fields lat JOIN item_fields lon ON lon.item_id = lat.item_id"
    " AND lon.name = ? WHERE lat.name = ? AND lat.num BETWEEN ? AND ?"
    " AND sin((radians(lat.num) - ?) / 2) * sin((radians(lat.num) - ?) / 2)"
    " + ? * cos(radians(lat.num)) * sin((radians(lon.num) - ?) / 2) * sin((radians(lon.num) - ?) / 2)"
    " <= ?)"
)
NEAR_ONE = f"SELECT 1 FROM items i WHERE i.status = ? AND {NEAR} LIMIT 1"  # Engine._has_items


def _allowed(db: sqlite3.Connection, understood: Understood) -> np.ndarray:
    """The segments of indexed items in the period, with the people and near the place understood
    (Catalog.segment_ids)."""
    sql, args = "SELECT s.id FROM segments s JOIN items i ON i.id = s.item_id WHERE i.status = ?", [INDEXED]
    if (dated := understood.dated) is not None:
        for op, day in ((">=", dated.start), ("<", dated.end)):
            if day is not None:
                sql, args = f"{sql} AND {IN_PERIOD.format(op)}", [*args, when.FIELD, day.isoformat()]
    for name in understood.who:
        sql, args = f"{sql} AND {WITH_PERSON}", [*args, name]
    if understood.placed is not None:
        sql, args = f"{sql} AND {NEAR}", [*args, *_near_args(understood.placed.city)[1:]]
    return np.fromiter((row[0] for row in db.execute(sql, args)), np.int64)


def _near_args(city: place.City) -> tuple:
    """NEAR_ONE's arguments for the city's `near` filter, rounded as its text (City.where) rounds them."""
    lat, lon, km = round(city.lat, 4), round(city.lon, 4), round(city.km)
    band, lat_r, lon_r = km / place.KM_PER_DEGREE, math.radians(lat), math.radians(lon)
    bound = math.sin(km / place.EARTH_KM / 2) ** 2
    distance = (lat_r, lat_r, math.cos(lat_r), lon_r, lon_r, bound)
    return INDEXED, *reversed(place.FIELDS), lat - band, lat + band, *distance


class _SqliteSource:
    """The ranking's Source (search/query/ranking.py) over memory-mapped FAISS and sqlite3; what
    _StoreSource in search/query/engine.py does with the Store and SQLAlchemy."""

    def __init__(self, db: sqlite3.Connection, indexes: dict[str, VectorIndex], cohorts: dict[str, Callable]):
        self.db = db
        self.indexes = indexes
        self.cohorts = cohorts  # encoded on first use: a query may not reach a space
        self.encoded: dict[str, np.ndarray] = {}

    def size(self, space: str) -> int:
        return len(self.indexes[space]) if space in self.indexes else 0

    def exact(self, space: str) -> bool:
        return self.indexes[space].exact

    def nearest(
        self, space: str, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.indexes[space].search(query[None, :], k, allowed)
        return scores[0], ids[0]

    def rescored(self, space: str, ids: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = sorted(self._select("SELECT id, vector FROM segments WHERE id IN ({})", ids))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        found = np.array([r[0] for r in rows], np.int64)
        similarity = np.stack([np.frombuffer(r[1], np.float32) for r in rows]) @ query
        order = np.argsort(-similarity, kind="stable")
        return found[order], similarity[order]

    def stored(self, space: str, ids: np.ndarray) -> np.ndarray:
        rows = dict(self._select("SELECT id, vector FROM segments WHERE id IN ({})", ids))
        if not len(ids):
            return np.zeros((0, self.indexes[space].dim), np.float32)
        return np.stack([np.frombuffer(rows[i], np.float32) for i in ids.tolist()])

    def word_candidates(self, words: list[str], limit: int) -> np.ndarray:
        """Catalog.word_candidates: LIKE is case-insensitive for ASCII in SQLite, lower() for the rest."""
        if not words:
            return np.zeros(0, np.int64)
        like = " OR ".join(["lower(s.text) LIKE ? ESCAPE '\\'"] * len(words))
        sql = (
            "SELECT s.id FROM segments s JOIN items i ON i.id = s.item_id"
            f" WHERE s.space = ? AND i.status = ? AND ({like}) ORDER BY s.id LIMIT ?"
        )
        patterns = [f"%{escape_like(w)}%" for w in words]
        return np.array(
            [r[0] for r in self.db.execute(sql, [TEXT_SPACE, INDEXED, *patterns, limit])], np.int64
        )

    def rows(self, ids: list[int]) -> dict[int, HitRow]:
        """Catalog.hits: rows of indexed segments (status checked here, as there)."""
        sql = (
            "SELECT s.id, s.item_id, i.uri, i.kind, i.width, i.height, s.space, s.t_start, s.t_end, s.text,"
            " s.thumbnail IS NOT NULL, s.words, json_extract(i.meta, '$.duration'), s.written, i.status"
            " FROM segments s JOIN items i ON i.id = s.item_id WHERE s.id IN ({})"
        )
        return {
            r[0]: HitRow(
                *r[:10], bool(r[10]), _json(r[11]), None if r[12] is None else float(r[12]), _json(r[13])
            )
            for r in self._select(sql, np.asarray(ids, np.int64))
            if r[14] == INDEXED
        }

    def cohort(self, space: str) -> np.ndarray:
        if space not in self.encoded:
            self.encoded[space] = self.cohorts[space]()
        return self.encoded[space]

    def _select(self, sql: str, ids: np.ndarray) -> list[tuple]:
        rows: list[tuple] = []
        for start in range(0, len(ids), CHUNK):
            part = [int(i) for i in ids[start : start + CHUNK]]
            rows += self.db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
        return rows


def _json(text: str | None):
    return None if text is None else json.loads(text)
