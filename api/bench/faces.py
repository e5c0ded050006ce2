"""`mmsearch bench faces`: what `api.blur_faces` costs a thumbnail, in one run on the same photos: the
time to make each photo's thumbnail with its faces looked for and blurred / without, as the API makes
them on a cache miss. The order alternates (plain, blurred, plain, blurred) and each side keeps its best
run, so machine drift cannot favour either."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mmsearch.api.bench.measure import ratio
from mmsearch.api.faces import LOOK_PX, FaceBlur
from mmsearch.api.routes.items import make_thumbnail
from mmsearch.config import Settings
from mmsearch.encode.images import decode_image
from mmsearch.indexer.sources import kind_of
from mmsearch.user_files import read_file


@dataclass
class FacesBench:
    photos: int
    size: int  # the thumbnails' longer side
    plain_ms: float  # per thumbnail
    blurred_ms: float
    blurred_over_plain: float  # the figure
    with_faces: int  # photos in which a face was found


def bench_faces(settings: Settings, photos: Path, size: int, runs: int = 2) -> FacesBench:
    limit = settings.indexer.max_file_bytes
    data = [read_file(p, limit) for p in sorted(photos.rglob("*")) if p.is_file() and kind_of(p) == "image"]
    if not data:
        raise ValueError(f"no pictures under {photos}")
    faces, pixels = FaceBlur(), settings.indexer.max_image_pixels
    best: dict[bool, float] = {}
    for _ in range(runs):
        for blur in (False, True):
            start = time.perf_counter()
            for d in data:
                make_thumbnail(d, size, pixels, faces if blur else None)
            best[blur] = min(best.get(blur, float("inf")), time.perf_counter() - start)
    found = sum(bool(faces.faces(decode_image(d, pixels, min_side=LOOK_PX).image)) for d in data)
    n = len(data)
    per = {blur: round(best[blur] / n * 1000, 1) for blur in best}
    return FacesBench(n, size, per[False], per[True], ratio(best[True], best[False]), found)
