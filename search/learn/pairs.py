"""Training data as users give it: a CSV (`path,caption`) or JSON Lines file of image-caption pairs, image
paths relative to the file. Read without torch; a bad row is a ValueError naming the file and line."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path


def load_pairs(captions_file: Path) -> list[tuple[Path, str]]:
    """Read (image path, caption) pairs from a CSV (``path,caption``) or JSONL file.

    Image paths are resolved relative to the captions file's folder. Raises
    ``ValueError`` naming the file and line for malformed rows or missing images.
    """
    captions_file = Path(captions_file)
    text = captions_file.read_text(encoding="utf-8")
    suffix = captions_file.suffix.lower()
    is_jsonl = suffix in (".jsonl", ".ndjson") or (suffix != ".csv" and text.lstrip().startswith("{"))
    rows = _jsonl_rows(captions_file, text) if is_jsonl else _csv_rows(captions_file, text)
    pairs = []
    for line, path, caption in rows:
        image = captions_file.parent / path
        if not image.is_file():
            raise ValueError(f"{captions_file}:{line}: image not found: {image}")
        pairs.append((image, caption))
    if not pairs:
        raise ValueError(f"{captions_file}: no image-caption pairs found")
    return pairs


def _csv_rows(file: Path, text: str) -> Iterator[tuple[int, str, str]]:
    """Yield (line, path, caption) from CSV text with a ``path,caption`` header."""
    reader = csv.reader(text.lstrip("\ufeff").splitlines())
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != ["path", "caption"]:
        raise ValueError(f"{file}:1: expected the CSV header 'path,caption', got {header!r}")
    for row in reader:
        line = reader.line_num
        if all(not cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ValueError(f"{file}:{line}: expected two non-empty fields 'path,caption', got {row!r}")
        yield line, row[0].strip(), row[1].strip()


def _jsonl_rows(file: Path, text: str) -> Iterator[tuple[int, str, str]]:
    """Yield (line, path, caption) from JSON Lines objects with "path" and "caption"."""
    for line, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{file}:{line}: invalid JSON: {e.msg}") from e
        if not isinstance(obj, dict):
            raise ValueError(f"{file}:{line}: expected a JSON object with 'path' and 'caption'")
        fields = []
        for key in ("path", "caption"):
            value = obj.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{file}:{line}: missing or empty string field {key!r}")
            fields.append(value.strip())
        yield line, fields[0], fields[1]
