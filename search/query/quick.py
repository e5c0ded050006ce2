"""One-shot `mmsearch search "text"` without torch, pydantic or SQLAlchemy.

A process that searches once pays more for its imports than for its search: torch and open_clip take
seconds, pydantic and SQLAlchemy tenths. This path loads the index's int8 query tower
(search/encode/query_tower.py), FAISS and the standard library's sqlite3, and ranks as Engine.search_text does
(tests/test_quick.py holds the two equal). It only takes what it can answer that way:
- a text query with no option but -k, --index-dir / -i, --all, --json and --paths;
- no MMSEARCH_ setting in the environment but MMSEARCH_INDEX_DIR (so default search settings hold);
- an index with a query tower for its model, a SQLite catalog inside it, a picture cache as current as
  the catalog, and pictures only: transcripts are ranked with the engine's text model and word match.
Hits are scored by their cohort margins and the weaker ones marked at the default cutoff, as the engine does
(search/query/fusion.py, search/query/relevance.py).
Anything else returns None, and the full command line runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.defaults import (
    CATALOG,
    DEFAULT_INDEX_DIR,
    GOOD_MARGIN,
    TEXT_GAP,
    IndexSearchDefaults,
    candidates_for,
)
from mmsearch.encode import query_tower
from mmsearch.hits import IMAGE_SPACE, INDEXED, TEXT_SPACE, Hit, HitRow
from mmsearch.query.fusion import COHORT, impostors, margins
from mmsearch.query.grouping import OVERFETCH, grouped
from mmsearch.query.relevance import mark_weak
from mmsearch.storage.layout import FORMAT, MANIFEST, vectors_file

if TYPE_CHECKING:
    from mmsearch.storage.vectors import VectorIndex

INDEX_DIR_ENV = "MMSEARCH_INDEX_DIR"
MAX_K = 10_000  # as the full command's -k
CHUNK = 10_000  # ids per SQL statement, under SQLite's bound on parameters


@dataclass(frozen=True)
class Query:
    text: str
    k: int = 10
    index_dir: Path | None = None
    as_json: bool = False
    show_all: bool = False
    paths: bool = False


FLAGS = {"--json": "as_json", "--all": "show_all", "--paths": "paths"}


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


def settings_in_env() -> bool:
    """Whether any mmsearch setting but the index folder is set (pydantic-settings ignores case)."""
    return any(k.upper().startswith("MMSEARCH_") and k.upper() != INDEX_DIR_ENV for k in os.environ)


def search(query: Query) -> list[Hit] | None:
    """The engine's hits for a plain text query, or None when this path cannot tell them."""
    folder = query.index_dir or Path(os.environ.get(INDEX_DIR_ENV, DEFAULT_INDEX_DIR))
    manifest = _manifest(folder)
    if manifest is None or not (folder / CATALOG).is_file():
        return None
    model = manifest["model"]
    tower = query_tower.QueryTower.open(folder / query_tower.FOLDER, model["fingerprint"])
    if tower is None:
        return None
    try:
        with closing(_read_only(folder / CATALOG)) as db:
            return _search(folder, db, model, tower, query)
    except (sqlite3.Error, OSError, RuntimeError):  # an older schema, a cache being replaced, ...
        return None


def _manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def _read_only(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def _search(
    folder: Path, db: sqlite3.Connection, model: dict, tower: query_tower.QueryTower, query: Query
) -> list[Hit] | None:
    from mmsearch.storage.vectors import VectorIndex  # FAISS loads while the tower's session starts

    if db.execute("SELECT 1 FROM segments WHERE space = ? LIMIT 1", (TEXT_SPACE,)).fetchone():
        return None
    generation = db.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
    path = vectors_file(folder, IMAGE_SPACE)
    index, saved_at = VectorIndex.load(path, model["dim"], IndexSearchDefaults(), mmap=True)
    if saved_at != (generation[0] if generation else 0):
        return None  # the engine brings the cache up to the catalog first
    vector = query_tower.unit(tower.encode_texts([query.text]))[0]  # as Encoder.encode_queries
    if not len(index):
        return []
    cohort = impostors(query_tower.unit(tower.encode_each(list(COHORT))), vector)  # as encode_lone_queries
    hits = _ranked(index, db, vector, cohort, query.k)
    return mark_weak(hits, GOOD_MARGIN, TEXT_GAP)


def _ranked(
    index: VectorIndex, db: sqlite3.Connection, query: np.ndarray, cohort: np.ndarray, k: int
) -> list[Hit]:
    """Engine.search_vectors for one space, unfiltered, scored by cohort margins."""
    fetch = k * OVERFETCH + 8
    while True:
        wanted = fetch if index.exact else max(fetch, candidates_for(len(index)))
        scores, ids = index.search(query[None, :], wanted)
        valid = ids[0] >= 0
        ids, similarity = ids[0][valid], scores[0][valid]
        if not index.exact:
            ids, similarity = _rescored(db, ids, query)
        score = margins(similarity.astype(np.float32), cohort @ _stored(db, ids, len(query)).T)
        scored = list(zip(score.tolist(), similarity.tolist(), ids.tolist(), strict=True))
        hits = grouped(scored, _rows(db, ids))
        if len(hits) >= k or len(ids) < fetch:
            return hits[:k]
        fetch *= OVERFETCH


def _rescored(db: sqlite3.Connection, ids: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products from the catalog's float32 vectors, best first (Engine._rescore)."""
    rows = sorted(_select(db, "SELECT id, vector FROM segments WHERE id IN ({})", ids), key=lambda r: r[0])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    found = np.array([r[0] for r in rows], np.int64)
    similarity = np.stack([np.frombuffer(r[1], np.float32) for r in rows]) @ query
    order = np.argsort(-similarity, kind="stable")
    return found[order], similarity[order]


def _stored(db: sqlite3.Connection, ids: np.ndarray, dim: int) -> np.ndarray:
    """The catalog's float32 vectors of segments known to be there, in the order of ids."""
    rows = dict(_select(db, "SELECT id, vector FROM segments WHERE id IN ({})", ids))
    return (
        np.stack([np.frombuffer(rows[i], np.float32) for i in ids.tolist()])
        if len(ids)
        else np.zeros((0, dim))
    )


def _rows(db: sqlite3.Connection, ids: np.ndarray) -> dict[int, HitRow]:
    """Catalog.hits: rows of indexed segments (status checked here, as there)."""
    sql = (
        "SELECT s.id, s.item_id, i.uri, i.kind, i.width, i.height, s.space, s.t_start, s.t_end, s.text,"
        " s.thumbnail IS NOT NULL, i.status FROM segments s JOIN items i ON i.id = s.item_id"
        " WHERE s.id IN ({})"
    )
    return {r[0]: HitRow(*r[:10], bool(r[10])) for r in _select(db, sql, ids) if r[11] == INDEXED}


def _select(db: sqlite3.Connection, sql: str, ids: np.ndarray) -> list[tuple]:
    rows: list[tuple] = []
    for start in range(0, len(ids), CHUNK):
        part = [int(i) for i in ids[start : start + CHUNK]]
        rows += db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
    return rows
