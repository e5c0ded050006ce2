"""Indexing on a local Ray cluster: the same catalog and index as the plain pipeline, and resumable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from mmsearch import Engine, ModelSpec, Settings
from mmsearch.config import ModelSettings
from mmsearch.encode import onnx_towers
from mmsearch.encode.models import Encoder
from mmsearch.encode.onnx_encoder import OnnxEncoder
from mmsearch.indexer import IndexReport, index_folder
from mmsearch.learn.train import save_model
from mmsearch.synth.media import sign_of
from tests.conftest import assert_same_ranking, write_images

ray = pytest.importorskip("ray")

from mmsearch.indexer.distributed import (  # noqa: E402
    SHARDS,
    index_folder_on_ray,
    index_images_on_ray,
    index_manifest_on_ray,
)
from mmsearch.indexer.manifest import index_manifest  # noqa: E402
from tests.test_manifest import products, write_csv  # noqa: E402

pytestmark = pytest.mark.slow

# mmsearch-tiny ships with the package, so Ray's worker processes can build it by name too.
MODEL = {"name": "mmsearch-tiny", "random_weights": True, "device": "cpu"}
SHARD = 16


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _rows(index: Path) -> list[tuple]:
    """(uri, status, content hash, width, height, item id, segment id, space, vector) per segment."""
    with sqlite3.connect(index / "catalog.sqlite") as db:
        return db.execute(
            "select i.uri, i.status, i.content_hash, i.width, i.height, i.id, s.id, s.space, s.vector "
            "from items i join segments s on s.item_id = i.id order by s.id"
        ).fetchall()


def _items(index: Path) -> list[tuple]:
    """(id, uri, status, error, fields) per item, segments or not."""
    with sqlite3.connect(index / "catalog.sqlite") as db:
        return db.execute("select id, uri, status, error, fields from items order by id").fetchall()


def _same_catalogs(a: Path, b: Path) -> None:
    rows_a, rows_b = _rows(a), _rows(b)
    assert [r[:8] for r in rows_a] == [r[:8] for r in rows_b]
    for row_a, row_b in zip(rows_a, rows_b, strict=True):  # picture and word vectors differ in width
        np.testing.assert_allclose(
            np.frombuffer(row_a[8], np.float32), np.frombuffer(row_b[8], np.float32), atol=1e-5
        )


def _search(settings: Settings) -> list[tuple[str, float]]:
    engine = Engine.open(settings)
    try:
        return [(h.uri, h.score) for h in engine.search_text("a red square", k=10)]
    finally:
        engine.close()


def _plain(tmp_path: Path, folder: Path) -> tuple[Settings, IndexReport]:
    """The folder indexed by the plain pipeline into tmp_path/plain."""
    settings = Settings(index_dir=tmp_path / "plain", model=MODEL)
    engine = Engine.open(settings, create=True)
    try:
        return settings, index_folder(folder, engine.encoder, engine.store, settings.indexer)
    finally:
        engine.close()


def _index(settings: Settings, folder: Path, **kw: object) -> IndexReport:
    engine = Engine.open(settings, create=True)
    try:
        return index_images_on_ray(folder, engine.encoder, engine.store, settings, shard_files=SHARD, **kw)
    finally:
        engine.close()


def test_ray_matches_plain_and_resumes(tmp_path: Path, local_ray: None) -> None:
    folder = tmp_path / "images"
    write_images(folder, 40)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    plain, expected = _plain(tmp_path, folder)

    on_ray = Settings(index_dir=tmp_path / "ray", model=MODEL)
    killed = _index(on_ray, folder, merge=False)  # shards written, nothing committed: a killed run
    assert killed.indexed == 0 and _rows(on_ray.index_dir) == []
    assert len(list((on_ray.index_dir / SHARDS).glob("*.pkl"))) == 3  # 41 files in shards of 16

    resumed = _index(on_ray, folder)
    assert (resumed.indexed, resumed.failed) == (expected.indexed, expected.failed) == (40, 1)
    assert list((on_ray.index_dir / SHARDS).iterdir()) == []
    _same_catalogs(plain.index_dir, on_ray.index_dir)
    assert_same_ranking(_search(on_ray), _search(plain))

    again = _index(on_ray, folder)
    assert (again.indexed, again.skipped) == (0, 41)
    _same_catalogs(plain.index_dir, on_ray.index_dir)


class Killed(Exception):
    pass


def _kill_after_first_shard(done: int, total: int) -> None:
    raise Killed


def test_killed_after_a_commit_finishes_without_duplicates(tmp_path: Path, local_ray: None) -> None:
    folder = tmp_path / "images"
    write_images(folder, 40)
    plain, _ = _plain(tmp_path, folder)

    settings = Settings(index_dir=tmp_path / "ray", model=MODEL)
    with pytest.raises(Killed):
        _index(settings, folder, on_progress=_kill_after_first_shard)
    assert len({r[0] for r in _rows(settings.index_dir)}) == SHARD

    engine = Engine.open(settings)
    try:
        report = index_folder_on_ray(folder, engine.encoder, engine.store, settings, shard_files=SHARD)
    finally:
        engine.close()
    assert (report.indexed, report.skipped, report.failed) == (40 - SHARD, SHARD, 0)
    _same_catalogs(plain.index_dir, settings.index_dir)


def test_manifest_on_ray_matches_plain_and_follows_changes(tmp_path: Path, local_ray: None) -> None:
    """A product CSV (one or two pictures and a title per row, a row whose picture is missing, a row
    without a key) indexed on Ray after a killed run equals `index_manifest`'s catalog; so does a re-run
    after rows change and go."""
    rows = products(tmp_path)[:60]
    rows[5]["images"] = ["img/missing.jpg"]
    rows[9]["sku"] = ""
    manifest = write_csv(tmp_path / "products.csv", rows)

    def index(settings: Settings, on_ray: bool, **kw: object) -> IndexReport:
        engine = Engine.open(settings, create=True)
        try:
            if on_ray:
                return index_manifest_on_ray(
                    manifest, engine.encoder, engine.store, settings, shard_files=SHARD, **kw
                )
            return index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
        finally:
            engine.close()

    def same() -> None:
        _same_catalogs(plain.index_dir, on_ray.index_dir)
        assert _items(plain.index_dir) == _items(on_ray.index_dir)

    plain = Settings(index_dir=tmp_path / "plain", model=MODEL)
    on_ray = Settings(index_dir=tmp_path / "ray", model=MODEL)
    expected = index(plain, on_ray=False)
    killed = index(on_ray, on_ray=True, merge=False)
    assert killed.indexed == 0 and len(list((on_ray.index_dir / SHARDS).glob("*.pkl"))) == 4  # 58 rows
    resumed = index(on_ray, on_ray=True)
    assert (resumed.indexed, resumed.failed) == (expected.indexed, expected.failed) == (58, 2)
    assert [e[1] for e in resumed.errors] == [e[1] for e in expected.errors]
    same()
    assert_same_ranking(_search(on_ray), _search(plain))

    rows[0]["price"] = 999
    del rows[30]
    write_csv(manifest, rows)
    plain_again, ray_again = index(plain, on_ray=False), index(on_ray, on_ray=True)
    counts = (ray_again.indexed, ray_again.skipped, ray_again.removed)
    assert counts == (plain_again.indexed, plain_again.skipped, plain_again.removed) == (1, 56, 1)
    same()


@pytest.mark.skipif(onnx_towers.missing() is not None, reason=f"ONNX: {onnx_towers.missing()}")
def test_ray_with_the_torch_free_encoder_matches_plain(tmp_path: Path, local_ray: None) -> None:
    """With cached int8 towers the driver and the actors open the torch-free OnnxEncoder (its
    preprocessing is what Ray ships to the decode tasks); the catalogs are the same. int8 activations
    are quantised per batch, so the shards are cut where the plain pipeline's batches end."""
    torch.manual_seed(3)
    config = open_clip.get_model_config("test-vit")
    weights = save_model(open_clip.create_model("test-vit"), config, tmp_path / "model")
    model = {"name": str(weights), "device": "cpu", "backend": "onnx-int8", "query_backend": "onnx-int8"}
    model |= {"onnx_cache_dir": str(tmp_path / "onnx"), "batch_size": SHARD}
    Encoder.for_spec(ModelSpec(str(weights)).normalised(), ModelSettings(**model))  # exports, checks
    folder = tmp_path / "images"
    write_images(folder, 20)

    plain = Settings(index_dir=tmp_path / "plain", model=model, indexer={"batch_size": SHARD})
    engine = Engine.open(plain, create=True)
    try:
        assert isinstance(engine.encoder, OnnxEncoder)
        assert index_folder(folder, engine.encoder, engine.store, plain.indexer).indexed == 20
    finally:
        engine.close()
    on_ray = Settings(index_dir=tmp_path / "ray", model=model, indexer={"batch_size": SHARD})
    assert _index(on_ray, folder).indexed == 20
    _same_catalogs(plain.index_dir, on_ray.index_dir)


def test_text_in_pictures_is_read_on_ray_as_in_the_plain_pipeline(tmp_path: Path, local_ray: None) -> None:
    """`mmsearch index --ocr --ray`: the decode tasks read the lines, the encoder actors cut them into
    text segments, and the catalog is the plain pipeline's, boxes and all."""
    folder = tmp_path / "signs"
    folder.mkdir()
    for name, text in {"harbour": "HARBOUR CLOSED", "platform": "PLATFORM NINE"}.items():
        sign_of(text, "white", 1.0).image.save(folder / f"{name}.png")
    write_images(folder, 3)

    def indexed(name: str, ray: str | None) -> tuple[IndexReport, list[tuple]]:
        settings = Settings(index_dir=tmp_path / name, model=MODEL, ocr={"enabled": True})
        engine = Engine.open(settings, create=True)
        try:
            report = engine.index(folder, ray=ray)
        finally:
            engine.close()
        with sqlite3.connect(settings.index_dir / "catalog.sqlite") as db:
            read = db.execute(
                "select text, written from segments where space = 'text' order by id"
            ).fetchall()
        return report, read

    (plain, read_here), (on_ray, read_on_ray) = indexed("plain", None), indexed("ray", "local")
    assert (on_ray.indexed, on_ray.failed) == (plain.indexed, plain.failed) == (5, 0)
    assert [text for text, _ in read_on_ray] == ["HARBOUR CLOSED", "PLATFORM NINE"]
    assert all(written for _, written in read_on_ray) and read_on_ray == read_here
    _same_catalogs(tmp_path / "plain", tmp_path / "ray")
