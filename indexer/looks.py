"""The looks of pictures indexed before looks were measured (search/encode/quality.py), measured from
their files when an index starts keeping stacks, so they can be stacked and ranked too."""

from __future__ import annotations

from pathlib import Path

from mmsearch.config import IndexerSettings
from mmsearch.encode import quality
from mmsearch.encode.images import decode_image, is_raw
from mmsearch.errors import MediaError
from mmsearch.storage import stacks
from mmsearch.storage.store import Store
from mmsearch.user_files import read_file


def measure_missing(store: Store, cfg: IndexerSettings, side: int) -> int:
    """Each picture without a look, read through the one door and decoded as the indexer decodes it for
    a model of `side` pixels; a file that no longer reads keeps none (it is not stacked). How many were
    measured."""
    looks = {}
    for item_id, uri in stacks.unmeasured(store.catalog.engine):
        try:
            data = read_file(Path(uri), cfg.max_file_bytes)
            picture = decode_image(data, cfg.max_image_pixels, min_side=side, raw=is_raw(uri))
        except (MediaError, OSError):
            continue
        looks[item_id] = quality.look(picture.image)
    stacks.measured(store.catalog.engine, looks)
    return len(looks)
