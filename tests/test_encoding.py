"""The torch-free encoder (search/encode/onnx_encoder.py): the model's own preprocessing in PIL and numpy, the
same vectors as the torch Encoder's ONNX towers, and index and search runs with no torch imported."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from mmsearch import ModelSpec
from mmsearch.config import ModelSettings
from mmsearch.encode import onnx_towers
from mmsearch.encode.factory import open_encoder
from mmsearch.encode.models import Encoder
from mmsearch.encode.onnx_encoder import OnnxEncoder, ShortestSideCrop
from mmsearch.indexer.pipeline import Preprocessing
from mmsearch.learn.train import save_model
from tests.conftest import write_images

pytestmark = pytest.mark.skipif(onnx_towers.missing() is not None, reason=f"ONNX: {onnx_towers.missing()}")
TEXTS = ["a red circle", "the harbour at dawn", "x", "  Ünïcödé  café  ", "word " * 90]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("model")
    return save_model(open_clip.create_model("test-vit"), open_clip.get_model_config("test-vit"), folder)


def settings(model: Path, **kw) -> ModelSettings:
    return ModelSettings(
        **{
            "name": str(model),
            "device": "cpu",
            "backend": "onnx-int8",
            "query_backend": "onnx-int8",
            "text_model": "clip",
            **kw,
        }
    )


@pytest.fixture(scope="module")
def reference(model: Path) -> Encoder:
    """The torch Encoder over the same ONNX towers; it exports and checks them into the cache."""
    return Encoder.for_spec(ModelSpec(str(model)).normalised(), settings(model))


def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (30, 40), (64, 64), (17, 90), (500, 333), (32, 32), (31, 33)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size", [32, 224])
def test_shortest_side_crop_is_open_clips_transform(size, interpolation):
    cfg = PreprocessCfg(size=size, interpolation=interpolation)
    theirs = image_transform_v2(cfg, is_train=False)
    info = onnx_towers.ModelInfo(8, 1, size, 0.0, dict(cfg.__dict__))
    ours = ShortestSideCrop.of(info)
    for image in pictures():
        np.testing.assert_allclose(ours(image), theirs(image).numpy(), atol=2e-6)


def test_other_resize_modes_are_left_to_torch():
    info = onnx_towers.ModelInfo(8, 1, 32, 0.0, dict(PreprocessCfg(size=32, resize_mode="squash").__dict__))
    assert ShortestSideCrop.of(info) is None


def test_cached_towers_give_a_torch_free_encoder_with_the_same_vectors(model: Path, reference: Encoder):
    light = open_encoder(ModelSpec(str(model)).normalised(), settings(model))
    assert isinstance(light, OnnxEncoder)
    assert light.record() == reference.record()
    assert (light.dim, light.image_size, light.logit_scale) == (
        reference.dim,
        reference.image_size,
        pytest.approx(reference.logit_scale),
    )
    images = pictures()
    # Same ONNX files; preprocessing in PIL and numpy on one side, torchvision on the other.
    np.testing.assert_allclose(light.encode_images(images), reference.encode_images(images), atol=1e-6)
    np.testing.assert_allclose(light.encode_texts(TEXTS), reference.encode_texts(TEXTS), atol=1e-6)
    np.testing.assert_allclose(light.encode_queries(TEXTS), reference.encode_queries(TEXTS), atol=1e-6)
    for text in TEXTS:
        assert light.token_count(text) == reference.token_count(text)
        assert light.split_text(text) == reference.split_text(text)
    shipped = pickle.loads(pickle.dumps(Preprocessing.of(light)))  # what Ray sends to its decode tasks
    np.testing.assert_array_equal(shipped.preprocess(images[0]), light.preprocess(images[0]))

    for other in (settings(model, backend="torch"), settings(model, query_backend="torch")):
        assert isinstance(open_encoder(ModelSpec(str(model)).normalised(), other), Encoder)


def test_indexing_and_searching_import_no_torch(model: Path, reference: Encoder, tmp_path: Path):
    write_images(tmp_path / "photos", 6)
    code = f"""
import json, sys
from pathlib import Path
from mmsearch.indexer import index_folder
from mmsearch import Engine, Settings
s = Settings(index_dir=Path({str(tmp_path / "index")!r}), model={settings(model).model_dump(mode="json")!r})
engine = Engine.open(s, create=True)
report = index_folder(Path({str(tmp_path / "photos")!r}), engine.encoder, engine.store, s.indexer)
hits = engine.search_text("a red circle", k=3)
print(json.dumps({{"encoder": type(engine.encoder).__name__, "indexed": report.indexed,
                  "hits": [h.uri for h in hits], "torch": "torch" in sys.modules,
                  "open_clip": "open_clip" in sys.modules}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["encoder"] == "OnnxEncoder" and got["indexed"] == 6 and len(got["hits"]) == 3
    assert not got["torch"] and not got["open_clip"]
