"""mmsearch's engine: encode, store and search images (and later video moments and speech) in one space.

Names are imported lazily, so `import mmsearch.config` or `mmsearch.errors` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "Settings": "mmsearch.config",
    "ModelSettings": "mmsearch.config",
    "IndexerSettings": "mmsearch.config",
    "Engine": "mmsearch.query.engine",
    "Concept": "mmsearch.query.request",
    "Filters": "mmsearch.query.request",
    "Picture": "mmsearch.query.request",
    "SearchRequest": "mmsearch.query.request",
    "Term": "mmsearch.query.request",
    "SearchResult": "mmsearch.query.result",
    "Hit": "mmsearch.hits",
    "Encoder": "mmsearch.encode.models",
    "ModelSpec": "mmsearch.encode.spec",
    **{
        name: "mmsearch.errors"
        for name in (
            "MMSearchError",
            "ConfigError",
            "ModelUnavailableError",
            "ModelMismatchError",
            "IndexStateError",
            "InvalidQueryError",
            "NotFoundError",
            "MediaError",
            "MediaTooLargeError",
            "BackendError",
            "BackendTimeoutError",
        )
    },
}

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "Concept",
    "ConfigError",
    "Encoder",
    "Engine",
    "Filters",
    "Hit",
    "IndexStateError",
    "IndexerSettings",
    "InvalidQueryError",
    "MMSearchError",
    "MediaError",
    "MediaTooLargeError",
    "ModelMismatchError",
    "ModelSettings",
    "ModelSpec",
    "ModelUnavailableError",
    "NotFoundError",
    "Picture",
    "SearchRequest",
    "SearchResult",
    "Settings",
    "Term",
]

if TYPE_CHECKING:
    from mmsearch.config import IndexerSettings, ModelSettings, Settings
    from mmsearch.encode.models import Encoder
    from mmsearch.encode.spec import ModelSpec
    from mmsearch.errors import (
        BackendError,
        BackendTimeoutError,
        ConfigError,
        IndexStateError,
        InvalidQueryError,
        MediaError,
        MediaTooLargeError,
        MMSearchError,
        ModelMismatchError,
        ModelUnavailableError,
        NotFoundError,
    )
    from mmsearch.hits import Hit
    from mmsearch.query.engine import Engine
    from mmsearch.query.request import Concept, Filters, Picture, SearchRequest, Term
    from mmsearch.query.result import SearchResult


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
