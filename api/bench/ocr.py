"""`mmsearch bench ocr`: what reading the text in pictures costs, in one run on the same photos: the
pipeline's time with OCR on / with it off, and OCR's share of the time with it on. The order alternates
(off, on, off, on) and each side keeps its best run, so machine drift cannot favour either."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmsearch.api.bench.measure import rate, ratio
from mmsearch.config import Settings
from mmsearch.encode.models import Encoder
from mmsearch.indexer.pipeline import index_folder
from mmsearch.storage.store import Store


@dataclass
class OcrBench:
    photos: int
    model: str
    off_s: float
    on_s: float
    off_ips: float
    on_ips: float
    on_over_off: float  # the figure: index time with OCR / without (the goal: at most 2)
    ocr_share: float  # of the time with OCR on
    blocks_read: int  # text segments stored with OCR on


def bench_ocr(settings: Settings, photos: Path, runs: int = 2) -> OcrBench:
    encoder = Encoder.from_settings(settings.model)
    best: dict[bool, float] = {}
    read = 0
    for _ in range(runs):
        for on in (False, True):
            with tempfile.TemporaryDirectory(prefix="mmsearch-bench-ocr-") as tmp:
                where = settings.model_copy(update={"index_dir": Path(tmp)})
                store = Store.open(where, encoder.record(), True)
                written = settings.ocr.model_copy(update={"enabled": on})  # max_side etc. as set
                report = index_folder(photos, encoder, store, settings.indexer, written=written)
                if on:
                    read = store.catalog.counts()["segments"] - report.indexed  # one picture segment each
                store.close()
            best[on] = min(best.get(on, float("inf")), report.seconds)
    n = report.indexed + report.skipped
    return OcrBench(
        report.indexed,
        encoder.spec.label(),
        round(best[False], 2),
        round(best[True], 2),
        rate(n, best[False]),
        rate(n, best[True]),
        ratio(best[True], best[False]),
        ratio(best[True] - best[False], best[True]),
        read,
    )
