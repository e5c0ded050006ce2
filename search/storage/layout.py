"""The files of an index folder, readable without the engine's imports (search/query/quick.py reads them)."""

from __future__ import annotations

import json
from pathlib import Path

from mmsearch.errors import IndexStateError

FORMAT = 2
MANIFEST, LOCK = "manifest.json", "write.lock"


def vectors_file(folder: Path, space: str) -> Path:
    return folder / f"vectors-{space}.faiss"


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexStateError(f"cannot read {path}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise IndexStateError(f"{path} has format {manifest.get('format')}, this mmsearch reads {FORMAT}")
    return manifest


def escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE pattern with ESCAPE '\\' (the catalog's and the one-shot
    search's SQL)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
