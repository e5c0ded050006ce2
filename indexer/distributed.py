"""Index pictures on a Ray cluster (Ray Data): the driver plans and shards the work, CPU tasks decode,
an actor pool (one GPU each when the cluster has GPUs) encodes, and the driver merges the shards.

The driver plans like the plain pipeline: new and changed image files of a folder against the catalog,
or a manifest's new and changed rows (`index_manifest_on_ray`; the driver splits their texts to the text
tower's context, which is quick, and the tasks decode their pictures). It cuts the to-do list into
shards of consecutive items, named by a hash of what they hold (paths, sizes and mtimes; rows'
fingerprints) and the model. Decode tasks run the plain pipeline's decoding; encoder actors, with the
encoder the plain pipeline would choose (`open_encoder`), run its `encode_records` and write each
shard's catalog records to INDEX_DIR/shards/<id>.pkl (temp file + rename). The driver, which holds the
index's writer lock throughout, commits the shards in plan order with `Store.write` (so item and
segment ids come out as the plain pipeline's) and deletes each shard file after its commit.

Resuming: a shard file that exists is not computed again. A killed run leaves committed shards in the
catalog (the next plan skips their items, and the uncommitted rest cuts into the same shards again) and
finished uncommitted shards on disk (merged without Ray work). Only images go through Ray; video and
audio files go through the plain pipeline afterwards (`index_folder_on_ray`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray

from mmsearch.config import IndexerSettings, ModelSettings, OcrSettings, Settings
from mmsearch.encode.base import EncoderBase
from mmsearch.encode.factory import open_encoder
from mmsearch.encode.spec import ModelSpec
from mmsearch.indexer import ocr
from mmsearch.indexer.manifest import Columns, decode_row, prepare_rows
from mmsearch.indexer.pipeline import (
    Decoded,
    IndexReport,
    Preprocessing,
    ProgressFn,
    decode_file,
    encode_records,
    index_folder,
    plan,
)
from mmsearch.indexer.sources import walk
from mmsearch.storage.schema import ItemRecord
from mmsearch.storage.store import Store

SHARDS = "shards"
SHARD_FILES = 64
DECODE_WORKER_BYTES = 1 << 30  # measured: about 0.7 GiB with torch imported

ShardResult = tuple[list[ItemRecord], list[tuple[int, int]]]  # what Store.write takes


@dataclass(frozen=True)
class Shard:
    id: str
    items: list  # what its decoder takes, one per catalog item


@dataclass(frozen=True)
class DecodeFiles:
    """Decodes a (SourceFile, KnownFile | None) as the plain pipeline does, reading the text written in
    pictures where `written` is enabled (one reader per worker process)."""

    prep: Preprocessing
    cfg: IndexerSettings
    written: OcrSettings | None = None

    def __call__(self, item: tuple) -> Decoded:
        reader = ocr.reader(self.written) if self.written is not None and self.written.enabled else None
        return decode_file(item[0], item[1], self.prep, self.cfg, reader=reader)


@dataclass(frozen=True)
class DecodeRows:
    """Decodes a manifest's (Row, fingerprint, text pieces) as `index_manifest` does."""

    prep: Preprocessing
    cfg: IndexerSettings

    def __call__(self, item: tuple) -> Decoded:
        return decode_row(*item, self.prep, self.cfg)


Decoder = Callable[[Any], Decoded]


def connect(address: str) -> None:
    """Join the Ray cluster at `address` (`auto`: the running one), or start one here (`local`);
    a Ray already initialised in this process is used as it is."""
    if ray.is_initialized():
        return
    if address == "local":
        ray.init(include_dashboard=False)
    else:
        ray.init(address=address)


def make_shards(items: list, keys: list[str], fingerprint: str, size: int = SHARD_FILES) -> list[Shard]:
    """Consecutive runs of `size` items, each named by its items' keys and the model."""
    shards = []
    for start in range(0, len(items), size):
        h = hashlib.sha256(fingerprint.encode())
        for key in keys[start : start + size]:
            h.update(f"{key}\n".encode())
        shards.append(Shard(h.hexdigest()[:24], items[start : start + size]))
    return shards


def shard_file(folder: Path, shard_id: str) -> Path:
    return folder / f"{shard_id}.pkl"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def decode_batch(batch: dict[str, np.ndarray], decode: Decoder, workers: int) -> dict:
    """Ray Data stage 1 (CPU tasks): each row's shard of items -> its pickled list of Decoded, decoded
    in threads, in order."""
    decoded = []
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        for payload in batch["items"]:
            decoded.append(pickle.dumps(list(pool.map(decode, pickle.loads(payload)))))
    return {"shard": batch["shard"], "decoded": decoded}


class EncodeShards:
    """Ray Data stage 2 (actor pool): opens the encoder once (on the actor's GPU when Ray gave it one),
    then encodes each shard's decoded items and writes the shard's records to the shard folder."""

    def __init__(self, spec: ModelSpec, model: ModelSettings, folder: str):
        device = "cuda" if ray.get_gpu_ids() else "cpu" if model.device == "auto" else model.device
        threads = model.threads or len(os.sched_getaffinity(0))  # Ray sets 1 for the actor: use the node's
        self.encoder = open_encoder(spec, model.model_copy(update={"device": device, "threads": threads}))
        self.folder = Path(folder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict:
        counts = []
        for shard_id, payload in zip(batch["shard"], batch["decoded"], strict=True):
            items: list[Decoded] = pickle.loads(payload)
            result: ShardResult = encode_records(self.encoder, items)
            _write_atomic(shard_file(self.folder, str(shard_id)), pickle.dumps(result))
            counts.append(len(items))
        return {"shard": batch["shard"], "files": np.asarray(counts)}


def gpus_per_encoder(model: ModelSettings) -> int:
    """One GPU per encoder actor where the cluster has GPUs and the model's device allows one."""
    return int(model.device in ("auto", "cuda") and ray.cluster_resources().get("GPU", 0) > 0)


def run_shards(
    shards: list[Shard],
    decode: Decoder,
    encoder: EncoderBase,
    settings: Settings,
    folder: Path,
    encoders: int,
) -> Iterator[str]:
    """Compute the shards on Ray; yield their ids, in order, as their files are written."""
    if not shards:
        return
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    rows = [{"shard": s.id, "items": pickle.dumps(s.items)} for s in shards]
    largest = max(len(s.items) for s in shards)
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        decode_batch,
        batch_size=1,
        fn_kwargs={"decode": decode, "workers": settings.indexer.decode_workers},
        # A worker (a picture at a time) plus a shard of float32 pixels, held twice while pickled. A
        # memory request of its own also keeps Ray from fusing decoding into the encoder actors, so the
        # two stages overlap.
        memory=DECODE_WORKER_BYTES + 2 * 4 * 3 * encoder.image_size**2 * largest,
    )
    model = settings.model.model_copy(update={"text_model": encoder.text_model_record()["name"]})
    ds = ds.map_batches(
        EncodeShards,
        batch_size=1,
        concurrency=encoders,
        num_gpus=gpus_per_encoder(settings.model),
        fn_constructor_args=(encoder.spec, model, str(folder)),
    )
    for row in ds.iter_rows():
        yield str(row["shard"])


def index_images_on_ray(
    root: Path,
    encoder: EncoderBase,
    store: Store,
    settings: Settings,
    shard_files: int = SHARD_FILES,
    encoders: int = 1,
    merge: bool = True,
    on_progress: ProgressFn | None = None,
) -> IndexReport:
    """Bring the index up to date with the images under root, computed on Ray (`connect` first).
    With `merge` off, the shards are computed and left on disk uncommitted (what a killed run leaves)."""
    started = time.perf_counter()
    report = IndexReport()
    cfg = settings.indexer
    with store.writer():
        known = store.catalog.known_files()
        work = plan(walk(root, cfg.include, cfg.exclude, frozenset({"image"})), known, root, prune=False)
        report.skipped = work.skipped
        items = [(f, known.get(f.uri)) for f in work.todo]
        keys = [f"{f.uri}\0{f.size}\0{f.mtime_ns}" for f in work.todo]
        shards = make_shards(items, keys, encoder.fingerprint, shard_files)
        decode = DecodeFiles(Preprocessing.of(encoder), cfg, settings.ocr)
        _compute_and_merge(store, shards, decode, encoder, settings, encoders, merge, report, on_progress)
    report.seconds = time.perf_counter() - started
    return report


def index_manifest_on_ray(
    manifest: Path,
    encoder: EncoderBase,
    store: Store,
    settings: Settings,
    columns: Columns = Columns(),
    root: Path | None = None,
    shard_files: int = SHARD_FILES,
    encoders: int = 1,
    merge: bool = True,
    on_progress: ProgressFn | None = None,
) -> IndexReport:
    """`index_manifest` with the rows' pictures decoded and encoded on Ray (`connect` first): the same
    catalog and index."""
    started = time.perf_counter()
    report = IndexReport()
    with store.writer():
        work = prepare_rows(manifest, store, report, columns, root)
        if work.failed:
            records, _ = encode_records(encoder, work.failed)
            store.write(records)
            report.count(records, [])
        items = [(row, fingerprint, encoder.split_text(row.text)) for row, fingerprint in work.todo]
        keys = [f"{row.uri}\0{fingerprint}" for row, fingerprint in work.todo]
        shards = make_shards(items, keys, encoder.fingerprint, shard_files)
        decode = DecodeRows(Preprocessing.of(encoder), settings.indexer)
        _compute_and_merge(store, shards, decode, encoder, settings, encoders, merge, report, on_progress)
    report.seconds = time.perf_counter() - started
    return report


def _compute_and_merge(
    store: Store,
    shards: list[Shard],
    decode: Decoder,
    encoder: EncoderBase,
    settings: Settings,
    encoders: int,
    merge: bool,
    report: IndexReport,
    on_progress: ProgressFn | None,
) -> None:
    """The shards not on disk yet computed on Ray, and all of them committed in order (with `merge`)."""
    folder = store.folder / SHARDS
    folder.mkdir(exist_ok=True)
    pending = [s for s in shards if not shard_file(folder, s.id).exists()]
    # closing: an exception while merging stops the Ray pipeline too
    with closing(run_shards(pending, decode, encoder, settings, folder, encoders)) as computed:
        if not merge:
            for _ in computed:
                pass
            return
        _merge(store, folder, shards, {s.id for s in pending}, computed, report, on_progress)
    store.save()
    _clear(folder)


def _merge(
    store: Store,
    folder: Path,
    shards: list[Shard],
    pending: set[str],
    computed: Iterator[str],
    report: IndexReport,
    on_progress: ProgressFn | None,
) -> None:
    """Commit every shard in plan order, waiting for the computed ones to arrive (in the same order)."""
    done, total = 0, sum(len(s.items) for s in shards)
    for shard in shards:
        if shard.id in pending:
            next(computed)  # this shard's file is written
        _commit(store, folder, shard.id, report)
        done += len(shard.items)
        if on_progress:
            on_progress(done, total)


def _commit(store: Store, folder: Path, shard_id: str, report: IndexReport) -> None:
    """Write one finished shard to the catalog and the vector index, then drop its file."""
    path = shard_file(folder, shard_id)
    records, touched = pickle.loads(path.read_bytes())
    store.write(records, touched=touched)
    report.count(records, touched)
    path.unlink()


def _clear(folder: Path) -> None:
    """After a complete merge: remove shards of earlier plans (their items since committed or changed)
    and temp files of killed writers."""
    for path in folder.iterdir():
        if path.suffix in (".pkl", ".tmp"):
            path.unlink()


def index_folder_on_ray(
    root: Path,
    encoder: EncoderBase,
    store: Store,
    settings: Settings,
    prune: bool = False,
    shard_files: int = SHARD_FILES,
    on_progress: ProgressFn | None = None,
) -> IndexReport:
    """`index_folder` with the images done on Ray: then video and audio files (and pruning) go through
    the plain pipeline, which finds the images committed and skips them."""
    started = time.perf_counter()
    images = index_images_on_ray(root, encoder, store, settings, shard_files, on_progress=on_progress)
    s = settings
    rest = index_folder(root, encoder, store, s.indexer, prune, None, s.video, s.speech, written=s.ocr)
    rest.indexed += images.indexed
    rest.failed += images.failed
    rest.errors = images.errors + rest.errors
    rest.skipped -= images.indexed + images.failed  # the images committed above, skipped the second time
    rest.seconds = time.perf_counter() - started
    return rest
