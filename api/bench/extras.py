"""`mmsearch bench ocr` and `mmsearch bench people`: what reading the text in pictures, or finding their
faces, costs indexing, in one run on the same photos: the pipeline's time with it on / with it off, and
its share of the time with it on. The order alternates (off, on, off, on) and each side keeps its best
run, so machine drift cannot favour either."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmsearch.api.bench.measure import rate, ratio
from mmsearch.config import Settings
from mmsearch.encode.models import Encoder
from mmsearch.indexer.pipeline import index_folder
from mmsearch.storage.store import Store

Extra = Literal["ocr", "faces"]


@dataclass
class ExtraBench:
    extra: Extra
    photos: int
    model: str
    off_s: float
    on_s: float
    off_ips: float
    on_ips: float
    on_over_off: float  # the figure: index time with it / without
    share: float  # of the time with it on
    found: int  # text segments stored (ocr), or faces found (faces), with it on


def bench_extra(settings: Settings, photos: Path, extra: Extra, runs: int = 2) -> ExtraBench:
    encoder = Encoder.from_settings(settings.model)
    best: dict[bool, float] = {}
    found = 0
    for _ in range(runs):
        for on in (False, True):
            with tempfile.TemporaryDirectory(prefix=f"mmsearch-bench-{extra}-") as tmp:
                where = settings.model_copy(update={"index_dir": Path(tmp)})
                store = Store.open(where, encoder.record(), True)
                written = settings.ocr.model_copy(update={"enabled": on and extra == "ocr"})  # max_side etc.
                people = settings.faces.model_copy(update={"enabled": on and extra == "faces"})
                report = index_folder(
                    photos, encoder, store, settings.indexer, written=written, people=people
                )
                if on:
                    counts = store.catalog.counts()  # one picture segment each, the rest text read
                    found = counts["faces"] if extra == "faces" else counts["segments"] - report.indexed
                store.close()
            best[on] = min(best.get(on, float("inf")), report.seconds)
    n = report.indexed + report.skipped
    return ExtraBench(
        extra,
        report.indexed,
        encoder.spec.label(),
        round(best[False], 2),
        round(best[True], 2),
        rate(n, best[False]),
        rate(n, best[True]),
        ratio(best[True], best[False]),
        ratio(best[True] - best[False], best[True]),
        found,
    )
