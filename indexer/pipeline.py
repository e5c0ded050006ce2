"""Index a folder: plan against the catalog -> decode ahead in worker threads -> encode in batches ->
commit catalog rows and vectors together per batch.

Decoding (file read, hash, JPEG decode at reduced scale, preprocessing) runs in a thread pool ahead of
the model, so the encoder always has a batch ready; Pillow, hashlib and torch release the GIL while they
work. Every batch is one catalog transaction, so a killed run loses at most the batch in flight, and the
next run skips what was committed (size + mtime, then content hash) and finishes the rest.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from indexer.media import decode_image
from indexer.sources import SourceFile, walk
from search.catalog import INDEXED, ItemRecord, KnownFile
from search.config import IndexerSettings
from search.errors import MediaError
from search.models import Encoder
from search.store import Store

ProgressFn = Callable[[int, int], None]


@dataclass
class IndexReport:
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    removed: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "encode": 0.0, "write": 0.0})
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Decoded:
    """A worker's result for one file: pixels to encode, an unchanged hash, or an error."""

    src: SourceFile
    content_hash: str | None = None
    pixels: torch.Tensor | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    unchanged_id: int | None = None  # catalog id of a file whose content hash proved unchanged
    seconds: float = 0.0


@dataclass
class _Plan:
    todo: list[SourceFile]
    skipped: int
    removed: list[str]


def plan(files: Iterable[SourceFile], known: dict[str, KnownFile], root: Path, prune: bool) -> _Plan:
    """New and changed files to process; files whose size and mtime match the catalog are skipped."""
    todo, skipped, seen = [], 0, set()
    for f in files:
        seen.add(f.uri)
        k = known.get(f.uri)
        if k is not None and k.size == f.size and k.mtime_ns == f.mtime_ns:
            skipped += 1
        else:
            todo.append(f)
    removed = []
    if prune:
        prefix = str(root.resolve())
        removed = [
            u for u in known if u not in seen and (u == prefix or u.startswith(prefix.rstrip("/") + "/"))
        ]
    return _Plan(todo, skipped, removed)


def _decode(src: SourceFile, known: KnownFile | None, encoder: Encoder, cfg: IndexerSettings) -> _Decoded:
    start = time.perf_counter()
    out = _Decoded(src)
    try:
        if src.size > cfg.max_file_bytes:
            raise MediaError(f"file is {src.size} bytes, over the limit of {cfg.max_file_bytes}")
        data = src.path.read_bytes()
        out.content_hash = hashlib.sha256(data).hexdigest()
        if known is not None and known.status == INDEXED and known.content_hash == out.content_hash:
            out.unchanged_id = known.id
        else:
            img = decode_image(data, cfg.max_image_pixels, min_side=encoder.image_size)
            out.pixels, out.width, out.height = encoder.preprocess(img.image), img.width, img.height
    except MediaError as exc:
        out.error = str(exc)
    except OSError as exc:
        out.error = f"cannot read file: {exc.strerror or exc}"
    out.seconds = time.perf_counter() - start
    return out


def _ahead(
    pool: ThreadPoolExecutor, fn: Callable[[SourceFile], _Decoded], items: list[SourceFile], depth: int
) -> Iterator[_Decoded]:
    """Like pool.map, in order, but never more than `depth` results in memory."""
    pending: deque[Future[_Decoded]] = deque()
    it = iter(items)
    for src in it:
        pending.append(pool.submit(fn, src))
        if len(pending) >= depth:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield result


def index_folder(
    root: Path,
    encoder: Encoder,
    store: Store,
    cfg: IndexerSettings,
    prune: bool = False,
    on_progress: ProgressFn | None = None,
) -> IndexReport:
    """Bring the index up to date with the image files under root."""
    started = time.perf_counter()
    report = IndexReport()
    with store.writer():
        known = store.catalog.known_files()
        work = plan(walk(root, cfg.include, cfg.exclude), known, root, prune)
        report.skipped = work.skipped
        if work.removed:
            store.write([], removed_uris=work.removed)
            report.removed = len(work.removed)
        batcher = _Batcher(encoder, store, report, cfg.save_every_s)
        done = 0
        with ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="decode") as pool:
            fn = lambda src: _decode(src, known.get(src.uri), encoder, cfg)  # noqa: E731
            for item in _ahead(pool, fn, work.todo, depth=cfg.batch_size * 3):
                report.stages["decode"] += item.seconds
                batcher.add(item)
                if len(batcher) >= cfg.batch_size:
                    batcher.flush()
                done += 1
                if on_progress:
                    on_progress(done, len(work.todo))
        batcher.flush()
        store.save()
    report.seconds = time.perf_counter() - started
    return report


class _Batcher:
    """Collects decoded files; flush() encodes them and commits one catalog transaction."""

    def __init__(self, encoder: Encoder, store: Store, report: IndexReport, save_every_s: float):
        self.encoder, self.store, self.report = encoder, store, report
        self.items: list[_Decoded] = []
        self.save_every_s = save_every_s
        self.last_save = time.perf_counter()

    def __len__(self) -> int:
        return sum(item.pixels is not None for item in self.items)

    def add(self, item: _Decoded) -> None:
        self.items.append(item)

    def flush(self) -> None:
        if not self.items:
            return
        items, self.items = self.items, []
        to_encode = [i for i in items if i.pixels is not None]
        t0 = time.perf_counter()
        vectors = self.encoder.encode_pixels(torch.stack([i.pixels for i in to_encode])) if to_encode else []
        t1 = time.perf_counter()
        records, touched = [], []
        by_uri = dict(zip((i.src.uri for i in to_encode), vectors, strict=True))
        for item in items:
            src = item.src
            if item.unchanged_id is not None:
                touched.append((item.unchanged_id, src.mtime_ns))
                continue
            rec = ItemRecord(
                src.uri,
                src.kind,
                src.size,
                src.mtime_ns,
                item.content_hash,
                item.width,
                item.height,
                error=item.error,
            )
            if item.error is None:
                rec.vectors, rec.segments = by_uri[src.uri][None, :], [{"space": "image"}]
                self.report.indexed += 1
            else:
                self.report.failed += 1
                self.report.errors.append((src.uri, item.error))
            records.append(rec)
        self.store.write(records, touched=touched)
        self.report.skipped += len(touched)
        self.report.stages["encode"] += t1 - t0
        self.report.stages["write"] += time.perf_counter() - t1
        if time.perf_counter() - self.last_save >= self.save_every_s:
            self.store.save()
            self.last_save = time.perf_counter()
