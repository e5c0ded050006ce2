"""Index a product catalogue from a manifest: CSV, JSONL or Parquet rows that name image files and
carry metadata.

One item per row, a product (`kind` "product", uri `<manifest path>#<key>`). Its images (several per
row: `;`-separated in CSV, a list in JSONL and Parquet) become image-space segments; its title and
description are embedded by the text tower as text-space segments. Every column is kept as a typed field
(numbers stay numbers: a CSV column whose values are mostly numbers is numeric, and a value in it that
is not a number is a bad row), filterable with the filter language (search/query/filters.py).

Bad rows (missing key or file, a file outside the allowed root, a bad number, a duplicate key) are
reported with their line number and skipped; the rest indexes. A re-run re-embeds only the rows whose
values or image files changed, and drops the products whose rows are gone.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mmsearch.config import IndexerSettings
from mmsearch.encode.base import EncoderBase
from mmsearch.encode.images import decode_image
from mmsearch.errors import ConfigError, MediaError
from mmsearch.hits import IMAGE_SPACE, INDEXED, TEXT_SPACE
from mmsearch.indexer.pipeline import (
    Batcher,
    Decoded,
    IndexReport,
    Part,
    Preprocessing,
    ProgressFn,
    decode_ahead,
)
from mmsearch.indexer.sources import SourceFile
from mmsearch.storage.schema import KnownFile, SegmentRecord
from mmsearch.storage.store import Store
from mmsearch.user_files import read_file

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
KEY_COLUMNS = ("id", "sku", "key", "product_id")
IMAGE_COLUMNS = ("images", "image", "image_path", "file", "path")
TEXT_COLUMNS = ("title", "name", "description")
KIND = "product"


@dataclass(frozen=True)
class Columns:
    """Which columns mean what; None picks the first of the usual names present."""

    key: str | None = None
    images: str | None = None
    text: tuple[str, ...] | None = None


@dataclass
class Row:
    line: int
    key: str
    images: list[Path]
    fields: dict
    text: str
    uri: str = ""
    problem: str | None = None
    stats: list[tuple[int, int]] = field(default_factory=list)  # (size, mtime_ns) per image


def is_manifest(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in FORMATS


def _records(path: Path) -> list[tuple[int, dict]]:
    """(line number, raw record) per row; line numbers as an editor shows them (header = line 1)."""
    fmt = FORMATS[path.suffix.lower()]
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            return [(reader.line_num, row) for row in reader]
    if fmt == "jsonl":
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    record = {"__error__": f"not JSON: {exc}"}
                out.append((n, record if isinstance(record, dict) else {"__error__": "not a JSON object"}))
        return out
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("Parquet manifests need pyarrow: pip install 'mmsearch[parquet]'") from exc
    return [(n, row) for n, row in enumerate(pq.read_table(path).to_pylist(), 1)]


def _pick(given: str | None, usual: tuple[str, ...], header: list[str], what: str, path: Path) -> str:
    if given is not None:
        if given not in header:
            raise ConfigError(f"{path}: no {what} column {given!r}; the columns are {', '.join(header)}")
        return given
    for name in usual:
        if name in header:
            return name
    raise ConfigError(
        f"{path}: no {what} column (looked for {', '.join(usual)}); the columns are {', '.join(header)}. "
        f"Name it with --{what}."
    )


def _number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def _numeric_columns(records: list[tuple[int, dict]], skip: set[str]) -> set[str]:
    """Columns whose non-empty values are mostly numbers."""
    numbers, filled = Counter(), Counter()
    for _, record in records:
        for name, value in record.items():
            if name in skip or value is None or value == "":
                continue
            filled[name] += 1
            numbers[name] += _number(value) is not None
    return {name for name, n in numbers.items() if n * 2 > filled[name]}


def _image_list(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    return [part.strip() for part in str(value).split(";") if part.strip()]


def load(path: Path, columns: Columns = Columns(), root: Path | None = None) -> list[Row]:
    """The manifest's rows, each with its problem if it has one."""
    path = path.resolve()
    root = (root or path.parent).resolve()
    records = _records(path)
    header = list(dict.fromkeys(name for _, r in records for name in r if name != "__error__"))
    key_col = _pick(columns.key, KEY_COLUMNS, header, "key", path)
    image_col = _pick(columns.images, IMAGE_COLUMNS, header, "images", path)
    text_cols = columns.text if columns.text is not None else tuple(c for c in TEXT_COLUMNS if c in header)
    numeric = _numeric_columns(records, {key_col, image_col, *text_cols})
    rows: list[Row] = []
    first_line: dict[str, int] = {}
    for line, record in records:
        key = str(record.get(key_col) or "").strip()
        row = Row(line, key, [], {}, "", uri=f"{path}#{key}")
        rows.append(row)
        if "__error__" in record:
            row.problem = record["__error__"]
            continue
        if not key:
            row.problem = f"no value in the key column {key_col!r}"
            continue
        if key in first_line:
            row.problem = f"duplicate key {key!r} (first on line {first_line[key]})"
            continue
        first_line[key] = line
        row.problem = _fill(row, record, image_col, text_cols, numeric, path.parent, root)
    return rows


def _fill(row: Row, record: dict, image_col: str, text_cols, numeric: set[str], base: Path, root: Path):
    """Typed fields, image paths and text of one row; the row's problem, if any."""
    for name, value in record.items():
        if value is None or value == "":
            continue
        if name in numeric:
            number = _number(value)
            if number is None:
                return f"{name} is {value!r}, not a number"
            row.fields[name] = number
        else:
            row.fields[name] = value if isinstance(value, bool | int | float) else str(value)
    for name in _image_list(record.get(image_col)):
        image = (base / name).resolve()
        if not image.is_relative_to(root):
            return f"image {name!r} is outside the allowed root {root}"
        try:
            st = image.stat()
        except OSError:
            return f"image not found: {name}"
        row.images.append(image)
        row.stats.append((st.st_size, st.st_mtime_ns))
    row.text = ". ".join(str(record[c]).strip() for c in text_cols if record.get(c) not in (None, ""))
    if not row.images and not row.text:
        return "no image and no text to index"
    return None


def _fingerprint(row: Row) -> str:
    """Changes when the row's values or any of its image files change."""
    data = {
        "fields": row.fields,
        "images": [[str(p), *s] for p, s in zip(row.images, row.stats, strict=True)],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def decode_row(
    row: Row, fingerprint: str, pieces: list[str], prep: EncoderBase | Preprocessing, cfg: IndexerSettings
) -> Decoded:
    """A row's images decoded and preprocessed, and its text `pieces` (`encoder.split_text(row.text)`)."""
    start = time.perf_counter()
    size, mtime_ns = sum(s for s, _ in row.stats), max((m for _, m in row.stats), default=0)
    src = SourceFile(row.images[0] if row.images else Path(row.uri), row.uri, KIND, size, mtime_ns)
    out = Decoded(src, content_hash=fingerprint, fields=row.fields)
    try:
        for image_path in row.images:
            try:
                data = read_file(image_path, cfg.max_file_bytes)
            except MediaError as exc:
                raise MediaError(f"{image_path.name}: {exc}") from exc
            img = decode_image(data, cfg.max_image_pixels, min_side=prep.image_size)
            out.parts.append(Part(SegmentRecord(IMAGE_SPACE), prep.preprocess(img.image)))
            if out.width is None:
                out.width, out.height = img.width, img.height
        out.parts += [Part(SegmentRecord(TEXT_SPACE, text=piece), piece) for piece in pieces]
    except MediaError as exc:
        out.parts = []
        out.error = f"line {row.line}: {exc}"
    except OSError as exc:
        out.parts = []
        out.error = f"line {row.line}: cannot read an image: {exc.strerror or exc}"
    out.seconds = time.perf_counter() - start
    return out


@dataclass
class ManifestPlan:
    """What a manifest asks of the catalog: rows to (re-)embed, rows to record as failed, items to drop."""

    todo: list[tuple[Row, str]]  # (row, fingerprint)
    failed: list[Decoded]  # bad rows with a key: failed products, visible in `mmsearch info --failures`
    gone: list[str]


def prepare_rows(
    manifest: Path, store: Store, report: IndexReport, columns: Columns, root: Path | None
) -> ManifestPlan:
    """The manifest's rows against the catalog (call under the store's writer lock). Products whose rows
    are gone are dropped here; rows skipped as unchanged and bad rows without a key (or with a duplicate
    one) are counted in `report`."""
    rows = load(manifest, columns, root)
    prefix = f"{manifest.resolve()}#"
    known = {uri: k for uri, k in store.catalog.known_files().items() if uri.startswith(prefix)}
    keys = {r.uri for r in rows if r.key}
    work = ManifestPlan([], [], [uri for uri in known if uri not in keys])
    for row in rows:
        if row.problem is not None:
            if row.key and not row.problem.startswith("duplicate key"):
                src = SourceFile(Path(row.uri), row.uri, KIND, 0, 0)
                work.failed.append(Decoded(src, error=f"line {row.line}: {row.problem}"))
            else:
                report.failed += 1
                report.errors.append((f"{manifest}:{row.line}", f"line {row.line}: {row.problem}"))
            continue
        fingerprint = _fingerprint(row)
        k: KnownFile | None = known.get(row.uri)
        if k is not None and k.status == INDEXED and k.content_hash == fingerprint:
            report.skipped += 1
        else:
            work.todo.append((row, fingerprint))
    if work.gone:
        store.write([], removed_uris=work.gone)
        report.removed = len(work.gone)
    return work


def index_manifest(
    manifest: Path,
    encoder: EncoderBase,
    store: Store,
    cfg: IndexerSettings,
    columns: Columns = Columns(),
    root: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> IndexReport:
    """Bring the index up to date with the manifest: changed rows re-embedded, gone rows dropped."""
    started = time.perf_counter()
    report = IndexReport()
    with store.writer():
        work = prepare_rows(manifest, store, report, columns, root)
        batcher = Batcher(encoder, store, report, cfg.save_every_s)
        for failed in work.failed:
            batcher.add(failed)
        with ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="decode") as pool:
            fn = lambda item: decode_row(*item, encoder.split_text(item[0].text), encoder, cfg)  # noqa: E731
            todo = work.todo
            for done, item in enumerate(decode_ahead(pool, fn, todo, depth=cfg.batch_size * 3), 1):
                report.stages["decode"] += item.seconds
                batcher.add(item)
                if len(batcher) >= cfg.batch_size:
                    batcher.flush()
                if on_progress:
                    on_progress(done, len(todo))
        batcher.flush()
        store.save()
    report.seconds = time.perf_counter() - started
    return report
