"""`mmsearch bench stacks`: what stacks cost, in one run on the same photos. Each picture's look (search/
encode/quality.py: sharpness, exposure, clipping, pHash) is measured at index time whether the index
keeps stacks or not: its time per picture against the time to decode that picture as the indexer does.
Stacking itself happens in the writer's transaction: the index time of an index that keeps stacks against
one that does not (alternating, each side keeping its best run)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmsearch.api.bench.measure import ratio
from mmsearch.config import Settings
from mmsearch.encode import quality
from mmsearch.encode.images import decode_image
from mmsearch.encode.models import Encoder
from mmsearch.indexer.pipeline import index_folder
from mmsearch.indexer.sources import walk
from mmsearch.storage.stacks import Stacks
from mmsearch.storage.store import Store
from mmsearch.user_files import read_file


@dataclass
class StackBench:
    photos: int
    model: str
    decode_ms: float  # per picture, as the indexer decodes it for the model
    look_ms: float  # per picture
    look_over_decode: float
    plain_s: float  # index time, no stacks
    stacked_s: float  # index time, keeping stacks
    stacked_over_plain: float
    stacks: int


def bench_stacks(settings: Settings, photos: Path, runs: int = 2) -> StackBench:
    encoder = Encoder.from_settings(settings.model)
    files = [src.path for src in walk(photos, kinds=frozenset({"image"}))]
    decode, look = float("inf"), float("inf")
    for _ in range(runs):
        pictures, started = [], time.perf_counter()
        for path in files:
            data = read_file(path, settings.indexer.max_file_bytes)
            pictures.append(
                decode_image(data, settings.indexer.max_image_pixels, min_side=encoder.image_size)
            )
        decode = min(decode, time.perf_counter() - started)
        started = time.perf_counter()
        for picture in pictures:
            quality.look(picture.image)
        look = min(look, time.perf_counter() - started)
    best: dict[bool, float] = {}
    stacks = 0
    for _ in range(runs):
        for kept in (False, True):
            with tempfile.TemporaryDirectory(prefix="mmsearch-bench-stacks-") as tmp:
                store = Store.open(
                    settings.model_copy(update={"index_dir": Path(tmp)}), encoder.record(), True
                )
                if kept:
                    Stacks(store.catalog.engine).start()
                report = index_folder(photos, encoder, store, settings.indexer)
                if kept:
                    stacks = Stacks(store.catalog.engine).count()
                store.close()
            best[kept] = min(best.get(kept, float("inf")), report.seconds)
    n = len(files)
    return StackBench(
        n,
        encoder.spec.label(),
        round(decode / n * 1000, 2),
        round(look / n * 1000, 2),
        ratio(look, decode),
        round(best[False], 2),
        round(best[True], 2),
        ratio(best[True], best[False]),
        stacks,
    )
