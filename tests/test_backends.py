"""Encoder backends: vectors and retrieval against torch float32 on the trained shapes model, the ONNX
export cache, the fallback without ONNX Runtime, and the fixed rules that pick a backend."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import get_args

import numpy as np
import open_clip
import pytest
import torch

from mmsearch import Engine, ModelSpec, Settings
from mmsearch.config import Backend, ModelSettings
from mmsearch.encode import onnx_export, onnx_towers, query_tower
from mmsearch.encode.base import AUTO_MIN_PARAMS
from mmsearch.encode.images import decode_image
from mmsearch.encode.models import Encoder, choose_backend, choose_query_backend, native_bf16
from mmsearch.indexer import index_folder
from mmsearch.learn.train import save_model
from mmsearch.synth.shapes import caption, class_of, classes, generate
from tests.conftest import assert_same_ranking, index_heldout_shapes, write_images

ONNX_MISSING = onnx_towers.missing()
needs_onnx = pytest.mark.skipif(ONNX_MISSING is not None, reason=f"ONNX backend: {ONNX_MISSING}")
BACKENDS = [
    pytest.param(
        "torch-bf16",
        marks=pytest.mark.skipif(
            not native_bf16(), reason="this CPU has no native bfloat16 (avx512_bf16 / amx_bf16)"
        ),
    ),
    pytest.param("onnx", marks=needs_onnx),
    pytest.param("onnx-int8", marks=needs_onnx),
]
HELD_OUT_PER_CLASS = 6  # as tests/test_quality.py
# int8 and bf16 kernels round differently per CPU (VNNI or not, AMX or not): a backend may move 3 of the
# 150 recall@5 hits or 2 of the 90 image queries against float32 torch and still be the same model.
RECALL_MOVES, TOP1_MOVES = 3 / 150 + 1e-9, 2 / 90 + 1e-9
TEXTS = ["a red circle", "a small blue square on a white background", "x", "the harbour at dawn"]


def shapes_settings(model: Path, backend: Backend, cache: Path, queries: str = "torch") -> ModelSettings:
    return ModelSettings(
        name=str(model), device="cpu", backend=backend, onnx_cache_dir=cache, query_backend=queries
    )


def shapes_encoder(model: Path, backend: Backend, cache: Path) -> Encoder:
    return Encoder.from_settings(shapes_settings(model, backend, cache))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def queries(tmp_path_factory) -> list[Path]:
    """Held-out pictures (seed 2) used as image queries and as probes."""
    return [path for path, _ in generate(tmp_path_factory.mktemp("queries"), per_class=3, seed=2, fmt="jpg")]


@pytest.fixture(scope="module")
def probes(queries: list[Path]) -> tuple[list, list[str]]:
    images = [decode_image(p.read_bytes(), 10**8).image for p in queries]
    return images, [caption(c, s) for c, s in classes()] + TEXTS


@pytest.fixture(scope="module")
def reference(shapes_model: Path, onnx_cache: Path, probes) -> tuple[np.ndarray, np.ndarray]:
    encoder = shapes_encoder(shapes_model, "torch", onnx_cache)
    return encoder.encode_images(probes[0]), encoder.encode_texts(probes[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_vectors_match_torch_fp32(backend, shapes_model: Path, onnx_cache: Path, probes, reference):
    encoder = shapes_encoder(shapes_model, backend, onnx_cache)
    assert encoder.backend == backend
    images, texts = (
        cosines(encoder.encode_images(probes[0]), reference[0]),
        cosines(encoder.encode_texts(probes[1]), reference[1]),
    )
    assert images.min() >= 0.99, f"{backend} images: min cosine {images.min():.4f}"
    assert texts.min() >= 0.99, f"{backend} texts: min cosine {texts.min():.4f}"


def quality(engine: Engine, queries: list[Path]) -> tuple[float, float]:
    """Text -> image recall@5 over every class and image -> image top-1 of the same class, measured as
    tests/test_quality.py does."""
    recall = 0.0
    for colour, shape in classes():
        hits = engine.search_text(caption(colour, shape), k=5)
        recall += sum(class_of(h.uri) == (colour, shape) for h in hits) / 5
    right = 0
    for path in queries:
        image = decode_image(path.read_bytes(), 10**8, min_side=engine.encoder.image_size).image
        right += class_of(engine.search_image(image, k=1)[0].uri) == class_of(path)
    return recall / len(classes()), right / len(queries)


def heldout_quality(root: Path, model: ModelSettings, queries: list[Path]) -> tuple[float, float]:
    _, engine = index_heldout_shapes(root, model.model_dump(), HELD_OUT_PER_CLASS)
    try:
        return quality(engine, queries)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def torch_quality(shapes_model: Path, onnx_cache: Path, queries, tmp_path_factory) -> tuple[float, float]:
    return heldout_quality(
        tmp_path_factory.mktemp("torch"), shapes_settings(shapes_model, "torch", onnx_cache), queries
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_retrieval_quality_unchanged(
    backend, shapes_model: Path, onnx_cache: Path, queries, torch_quality, tmp_path
):
    recall, top1 = heldout_quality(tmp_path, shapes_settings(shapes_model, backend, onnx_cache), queries)
    torch_recall, torch_top1 = torch_quality
    assert abs(recall - torch_recall) <= RECALL_MOVES, f"recall@5 {recall:.3f} vs torch {torch_recall:.3f}"
    assert abs(top1 - torch_top1) <= TOP1_MOVES, f"image top-1 {top1:.3f} vs torch {torch_top1:.3f}"


@needs_onnx
def test_query_tower_matches_open_clip_tokens_and_torch_vectors(shapes_model: Path, onnx_cache: Path, probes):
    encoder = Encoder.from_settings(shapes_settings(shapes_model, "torch", onnx_cache, queries="onnx-int8"))
    tower = encoder.query_tower
    assert encoder.query_backend == "onnx-int8" and tower is not None
    assert tower.folder.name == query_tower.FOLDER and tower.folder.parent.parent == onnx_cache
    assert tower.folder.parent.name.startswith(encoder.fingerprint)
    texts = [*probes[1], *onnx_export.PROBE_TEXTS, "Ünïcödé  CAFÉ\u00a0noir", "&amp;amp; x", "a\x07b", "  "]
    texts += ["emoji 🐶🏖️ and 日本語", "it's <start_of_text> x <end_of_text>", "a-b_c.d!e?f 123 €5"]
    expected = encoder.tokenizer(texts)
    got = tower.tokens(texts)
    assert np.array_equal(got, expected[:, : got.shape[1]].numpy()) and not expected[:, got.shape[1] :].any()
    # A one-shot search's tokenizer, for each text's own words alone, gives the same tokens.
    for_one = query_tower.QueryTower(tower.folder, tower.meta, whole=False)
    assert all(np.array_equal(for_one.tokens([t]), tower.tokens([t])) for t in texts)
    assert np.array_equal(for_one.tokens(texts), got)
    got = cosines(encoder.encode_queries(probes[1]), encoder.encode_texts(probes[1]))
    assert got.min() >= query_tower.MIN_COSINE, f"int8 query tower: min cosine {got.min():.4f}"
    assert tower.meta.cosine_min >= query_tower.MIN_COSINE


@needs_onnx
def test_retrieval_quality_unchanged_with_the_query_tower(
    shapes_model: Path, onnx_cache: Path, queries, torch_quality, tmp_path
):
    model = shapes_settings(shapes_model, "torch", onnx_cache, queries="onnx-int8")
    recall, top1 = heldout_quality(tmp_path, model, queries)
    torch_recall, torch_top1 = torch_quality
    assert abs(recall - torch_recall) <= RECALL_MOVES, f"recall@5 {recall:.3f} vs torch {torch_recall:.3f}"
    assert top1 == torch_top1  # image queries never use the query tower
    tower = tmp_path / "index" / query_tower.FOLDER  # kept in the index for one-shot searches
    assert query_tower.usable(tower, ModelSpec(str(shapes_model)).normalised().fingerprint) is not None


@needs_onnx
def test_a_query_tower_that_fails_its_check_is_not_used(shapes_model: Path, onnx_cache: Path, caplog):
    settings = shapes_settings(shapes_model, "torch", onnx_cache, queries="onnx-int8")
    folder = Encoder.from_settings(settings).query_tower.folder
    meta = query_tower.TowerMeta.read(folder)
    try:
        query_tower.TowerMeta(**{**meta.__dict__, "cosine_min": 0.98}).write(folder)
        with caplog.at_level(logging.WARNING, logger="mmsearch.encode.models"):
            encoder = Encoder.from_settings(settings)
        assert encoder.query_tower is None and encoder.query_backend == "torch"
        assert "not close enough" in caplog.text
    finally:
        meta.write(folder)


def save_test_vit(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_model(open_clip.create_model("test-vit"), open_clip.get_model_config("test-vit"), folder)


def onnx_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.onnx"))}


def test_exporting_the_towers_leaves_the_model_in_inference_mode(shapes_model: Path, tmp_path: Path):
    """The exporter puts its wrapper back in the wrapper's own mode, and the modules under it with it:
    the shapes model's batch norms were left training, and the next picture alone in its batch failed
    ("Expected more than 1 value per channel when training") in `make run`'s demo."""
    cache = tmp_path / "cache"
    encoder = Encoder.from_settings(shapes_settings(shapes_model, "torch", cache, queries="onnx-int8"))
    assert encoder.query_tower is not None and any(cache.rglob(query_tower.GRAPH))  # exported here
    encoder._exported(cache, int8=False)  # and the float32 towers
    assert not any(module.training for module in encoder.model.modules())
    photo = (Path(__file__).parent / "fixtures" / "photos" / "cat.jpg").read_bytes()
    picture = decode_image(photo, 10**8, min_side=encoder.image_size).image
    assert encoder.encode_images([picture]).shape == (1, encoder.dim)


@needs_onnx
def test_onnx_export_is_cached_beside_the_model_and_reused(tmp_path: Path, caplog):
    spec = ModelSpec(str(save_test_vit(tmp_path / "model", 1))).normalised()
    first = Encoder(spec, "cpu", backend="onnx")
    assert first.towers.folder.parent == tmp_path / "model" / "onnx"
    assert first.towers.folder.name.startswith(spec.fingerprint)
    exported = onnx_files(first.towers.folder)
    assert list(exported) == ["image.onnx", "text.onnx"]

    with caplog.at_level(logging.INFO, logger="mmsearch.encode.onnx_export"):
        second = Encoder(spec, "cpu", backend="onnx")
        int8 = Encoder(spec, "cpu", backend="onnx-int8")
    assert "exporting" not in caplog.text and "quantised" in caplog.text
    assert second.towers.folder == int8.towers.folder == first.towers.folder
    after = onnx_files(first.towers.folder)
    assert {k: after[k] for k in exported} == exported  # not written again
    assert set(after) == {"image.onnx", "text.onnx", "image.int8.onnx", "text.int8.onnx"}
    np.testing.assert_allclose(first.encode_texts(TEXTS), second.encode_texts(TEXTS), atol=1e-6)


@needs_onnx
def test_a_changed_model_is_exported_again(tmp_path: Path):
    cache, folder = tmp_path / "cache", tmp_path / "model"
    save_test_vit(folder, 1)
    old = Encoder(ModelSpec(str(folder)).normalised(), "cpu", backend="onnx", cache_dir=cache)
    save_test_vit(folder, 2)  # new weights in the same folder: a new fingerprint
    spec = ModelSpec(str(folder)).normalised()
    new = Encoder(spec, "cpu", backend="onnx", cache_dir=cache)
    assert new.fingerprint != old.fingerprint and new.towers.folder != old.towers.folder
    assert len(list(cache.iterdir())) == 2

    expected = Encoder(spec, "cpu", backend="torch").encode_texts(TEXTS)
    assert cosines(new.encode_texts(TEXTS), expected).min() > 0.9999
    assert cosines(old.encode_texts(TEXTS), expected).min() < 0.99


def test_without_onnx_runtime_the_encoder_falls_back_to_torch(monkeypatch, tmp_path: Path, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if ONNX Runtime could not be imported
    spec = ModelSpec("test-vit", random_weights=True)
    with caplog.at_level(logging.WARNING, logger="mmsearch.encode.models"):
        encoder = Encoder(spec, "cpu", backend="onnx", cache_dir=tmp_path)
    assert encoder.backend == "torch" and encoder.towers is None
    assert "onnxruntime cannot be imported" in caplog.text and "pip install" in caplog.text
    assert list(tmp_path.iterdir()) == []
    assert encoder.encode_texts(TEXTS).shape == (len(TEXTS), 32)


def test_auto_selection_follows_fixed_rules():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_backend("auto", cuda, 10**9) == "torch"
    assert choose_backend("auto", cpu, AUTO_MIN_PARAMS - 1) == "torch"
    on_cpu = {choose_backend("auto", cpu, AUTO_MIN_PARAMS) for _ in range(3)}
    without_onnx = "torch-bf16" if native_bf16() else "torch"
    assert on_cpu == {"onnx-int8" if ONNX_MISSING is None else without_onnx}
    for backend in get_args(Backend)[1:]:  # settings override the rules
        assert choose_backend(backend, cuda, 1) == backend
    assert choose_query_backend("auto", cuda, 10**9) == "torch"
    assert choose_query_backend("auto", cpu, AUTO_MIN_PARAMS - 1) == "torch"
    big = "onnx-int8" if ONNX_MISSING is None else "torch"
    assert {choose_query_backend("auto", cpu, AUTO_MIN_PARAMS) for _ in range(3)} == {big}
    assert choose_query_backend("torch", cpu, 10**9) == "torch"

    encoder = Encoder(ModelSpec("test-vit", random_weights=True), "cpu")
    assert encoder.backend == "torch" and encoder.record()["backend"] == "torch"
    assert encoder.record()["params"] == encoder.params < AUTO_MIN_PARAMS


def mmsearch_info(index_dir: Path, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mmsearch.api.cli", "info", "--index-dir", str(index_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_onnx
def test_info_reports_the_backend_and_any_backend_reopens_the_index(tmp_path: Path):
    model = save_test_vit(tmp_path / "model", 1)
    write_images(tmp_path / "photos", 4)
    made = Settings(index_dir=tmp_path / "index", model={"name": str(model), "backend": "onnx"})
    engine = Engine.open(made, create=True)
    index_folder(tmp_path / "photos", engine.encoder, engine.store, made.indexer)
    onnx_hits = [(h.uri, h.score) for h in engine.search_text("a red circle", k=4)]
    engine.close()

    reopened = Engine.open(Settings(index_dir=tmp_path / "index"))  # auto: torch for a tiny model
    assert reopened.encoder.backend == "torch"
    assert reopened.encoder.fingerprint == engine.encoder.fingerprint
    assert_same_ranking([(h.uri, h.score) for h in reopened.search_text("a red circle", k=4)], onnx_hits)
    reopened.close()

    assert "backend  torch here (setting: auto); index made with onnx" in mmsearch_info(tmp_path / "index")
    forced = mmsearch_info(tmp_path / "index", MMSEARCH_MODEL__BACKEND="onnx-int8")
    assert "backend  onnx-int8 here (setting: onnx-int8)" in forced


@needs_onnx
def test_auto_keeps_int8_towers_only_when_they_pass_their_check(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr(
        "mmsearch.encode.models.AUTO_MIN_PARAMS", 0
    )  # auto treats the test model as a large one
    spec = ModelSpec(str(save_test_vit(tmp_path / "model", 1))).normalised()
    first = Encoder(spec, "cpu")
    assert first.backend == "onnx-int8" and first.towers is not None
    info = onnx_towers.ModelInfo.read(first.towers.folder)
    assert info.int8_cosine_min >= 0.99

    failed = replace(info, int8_cosine_min=0.95)
    failed.write(first.towers.folder)
    with caplog.at_level(logging.WARNING, logger="mmsearch.encode.models"):
        second = Encoder(spec, "cpu")
    assert second.backend == "torch" and second.towers is None and "not close enough" in caplog.text
    asked = Encoder(spec, "cpu", backend="onnx-int8")  # asked for by name: kept
    assert asked.backend == "onnx-int8"
    np.testing.assert_allclose(
        second.encode_texts(TEXTS), Encoder(spec, "cpu", backend="torch").encode_texts(TEXTS)
    )
