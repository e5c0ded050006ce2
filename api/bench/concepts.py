"""`mmsearch bench concepts`: what a concept taught by examples costs on a catalog of `items` pictures.

A real SQLite catalog of clustered synthetic unit vectors (as `bench search` makes them: embeddings'
neighbourhoods have structure), written in batches as the indexer writes them. Measured in one run:
writing a batch while concepts exist (each new item scored and tagged in the writer's transaction)
against writing one with none; teaching a concept from 10 examples (a pass to draw the background, the
fit, a pass to score and tag every item) against one bare pass over the stored vectors, the floor any
scoring of every item pays; and asking what to label next.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsearch.api.bench.measure import Stopwatch, ratio
from mmsearch.api.bench.search import synthetic
from mmsearch.hits import IMAGE_SPACE
from mmsearch.learn import concepts as teaching
from mmsearch.storage.catalog import Catalog
from mmsearch.storage.concepts import Concepts
from mmsearch.storage.schema import ItemRecord, SegmentRecord

BATCH = 1000  # items per write, as the indexer's batches
CONCEPTS = 3  # concepts that exist while the timed batches are written
RUNS = 3  # timed batches each way; the quickest counts


@dataclass
class ConceptBench:
    items: int
    dim: int
    write_batch_s: float  # a batch of BATCH items, no concept (the quickest of RUNS)
    write_batch_concepts_s: float  # the same size while CONCEPTS concepts exist
    write_ratio: float
    read_pass_s: float  # every item's mean picture vector read once
    teach_s: float  # 10 examples, every item scored and tagged
    teach_over_read: float
    to_label_s: float
    members: int  # items the taught concept holds


def bench_concepts(items: int, dim: int = 512) -> ConceptBench:
    vectors = synthetic(items + 2 * RUNS * BATCH, dim, seed=0)
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-concepts-") as folder:
        catalog = Catalog(f"sqlite:///{Path(folder) / 'catalog.db'}")
        try:
            for start in range(0, items, BATCH):
                catalog.write(_records(vectors, start, min(start + BATCH, items)))
            concepts = Concepts(catalog.engine)
            plain = _timed_write(catalog, vectors, items)
            liked = list(range(1, 6))  # five items as liked, five others as not (ids start at 1)
            for n in range(CONCEPTS):
                teaching.teach(catalog, concepts, f"warm-up {n}", [n * 7 + 1], [n * 7 + 2])
            with_concepts = _timed_write(catalog, vectors, items + RUNS * BATCH)
            clock = Stopwatch()
            for _ in catalog.picture_vectors():
                pass
            read = clock.seconds()
            clock = Stopwatch()
            taught = teaching.teach(catalog, concepts, "bench", liked, list(range(items - 5, items)))
            teach = clock.seconds()
            clock = Stopwatch()
            teaching.to_label(catalog, concepts, "bench", 8)
            to_label = clock.seconds()
        finally:
            catalog.close()
    return ConceptBench(
        items,
        dim,
        round(plain, 3),
        round(with_concepts, 3),
        ratio(with_concepts, plain),
        round(read, 3),
        round(teach, 3),
        ratio(teach, read),
        round(to_label, 3),
        taught.items,
    )


def _records(vectors: np.ndarray, start: int, stop: int) -> list[ItemRecord]:
    return [
        ItemRecord(
            f"/bench/{i:08d}.jpg",
            "image",
            1000,
            i,
            segments=[SegmentRecord(IMAGE_SPACE, vector=vectors[i])],
        )
        for i in range(start, stop)
    ]


def _timed_write(catalog: Catalog, vectors: np.ndarray, start: int) -> float:
    """The quickest of RUNS batches written from `start` on."""
    times = []
    for run in range(RUNS):
        records = _records(vectors, start + run * BATCH, start + (run + 1) * BATCH)
        clock = Stopwatch()
        catalog.write(records)
        times.append(clock.seconds())
    return min(times)
