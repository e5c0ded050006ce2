"""mmsearch's engine: encode, store and search images (and later video moments and speech) in one space.

Names are imported lazily, so `import search.config` or `search.errors` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "Settings": "search.config",
    "ModelSettings": "search.config",
    "IndexerSettings": "search.config",
    "Engine": "search.engine",
    "Filters": "search.engine",
    "Hit": "search.engine",
    "Encoder": "search.models",
    "ModelSpec": "search.spec",
    **{
        name: "search.errors"
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
    "Settings",
]

if TYPE_CHECKING:
    from search.config import IndexerSettings, ModelSettings, Settings
    from search.engine import Engine, Filters, Hit
    from search.errors import (
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
    from search.models import Encoder
    from search.spec import ModelSpec


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
