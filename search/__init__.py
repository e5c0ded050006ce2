"""mmsearch's engine: encode, store and search images (and later video moments and speech) in one space."""

from search.config import IndexerSettings, ModelSettings, Settings
from search.engine import Engine, Filters, Hit
from search.errors import (
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
from search.models import Encoder, ModelSpec

__all__ = [
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
