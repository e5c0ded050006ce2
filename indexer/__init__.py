"""Ingestion: where files come from and how they become catalog rows and vectors."""

from indexer.pipeline import IndexReport, index_folder

__all__ = ["IndexReport", "index_folder"]
