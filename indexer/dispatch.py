"""The indexing use case: one call for every door (the command line, the HTTP index runs, MCP's index
tool, Engine.index). It takes the whole Settings and a path, a folder or a manifest (CSV, JSONL,
Parquet), and dispatches to the plain pipeline or to Ray, so every per-file feature (video, speech, text
read in pictures) is switched on the same way whichever way runs."""

from __future__ import annotations

from pathlib import Path

from mmsearch.config import Settings
from mmsearch.encode.base import EncoderBase
from mmsearch.errors import ConfigError
from mmsearch.indexer.manifest import Columns, index_manifest, is_manifest
from mmsearch.indexer.pipeline import IndexReport, ProgressFn, index_folder
from mmsearch.storage.store import Store


def index_path(
    path: Path,
    encoder: EncoderBase,
    store: Store,
    settings: Settings,
    prune: bool = False,
    ray: str | None = None,
    columns: Columns | None = None,
    root: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> IndexReport:
    """Bring the index up to date with `path`. `ray`: a cluster's address (`auto`, `local`) to do the
    pictures on (the ray extra); `prune` drops a folder's files deleted since the last run; `columns` and
    `root` read a manifest (its columns; where its absolute image paths must lie)."""
    s, columns = settings, columns or Columns()
    if ray is not None:
        if s.faces.enabled or s.safety.enabled:
            raise ConfigError(
                "faces and explicit content are looked for by the plain pipeline only: index without --ray"
            )
        from mmsearch.indexer.distributed import connect, index_folder_on_ray, index_manifest_on_ray

        connect(ray)
        if is_manifest(path):
            return index_manifest_on_ray(path, encoder, store, s, columns, root, on_progress=on_progress)
        return index_folder_on_ray(path, encoder, store, s, prune, on_progress=on_progress)
    if is_manifest(path):
        return index_manifest(path, encoder, store, s.indexer, columns, root, on_progress=on_progress)
    return index_folder(
        path,
        encoder,
        store,
        s.indexer,
        prune,
        on_progress,
        s.video,
        s.speech,
        written=s.ocr,
        people=s.faces,
        safety=s.safety,
    )
