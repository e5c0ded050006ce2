"""`mmsearch bench ocr`, `mmsearch bench people` and `mmsearch bench safety`: what reading the text in
pictures, finding their faces or looking for explicit content costs indexing, in one run on the same
photos: the pipeline's time with it on / with it off, and its share of the time with it on. The order
alternates (off, on, off, on) and each side keeps its best run, so machine drift cannot favour
either."""

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

Extra = Literal["ocr", "faces", "safety"]


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
    found: int  # text segments stored (ocr), faces found (faces) or pictures flagged (safety), with it on


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
                safety = settings.safety.model_copy(update={"enabled": on and extra == "safety"})
                report = index_folder(
                    photos, encoder, store, settings.indexer, written=written, people=people, safety=safety
                )
                if on:
                    found = _found(store, extra, report.indexed)
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


def _found(store: Store, extra: Extra, indexed: int) -> int:
    """What the stage found: faces, pictures flagged, or text segments (one picture segment each, the
    rest text read)."""
    if extra == "safety":
        return dict(store.catalog.facet("explicit", None, 10)).get(1.0, 0)
    counts = store.catalog.counts()
    return counts["faces"] if extra == "faces" else counts["segments"] - indexed
