"""Ingestion: where files come from and how they become catalog rows and vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmsearch.indexer.pipeline import IndexReport, index_folder

__all__ = ["IndexReport", "index_folder"]


def __getattr__(name: str):
    if name in __all__:
        from mmsearch.indexer import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'indexer' has no attribute {name!r}")
