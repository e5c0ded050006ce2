"""Model loading: local folders, explicit random weights, clear errors, no mixing of models."""

from pathlib import Path

import numpy as np
import open_clip
import pytest
from PIL import Image

from mmsearch import Engine, ModelSpec
from mmsearch.encode.models import Encoder
from mmsearch.errors import ConfigError, ModelMismatchError, ModelUnavailableError
from mmsearch.indexer import index_folder
from mmsearch.learn.train import save_model
from tests.conftest import make_settings, write_images


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    model = open_clip.create_model("mmsearch-tiny")  # random init, saved as a local model folder
    return save_model(
        model, open_clip.get_model_config("mmsearch-tiny"), tmp_path_factory.mktemp("m") / "tiny"
    )


def test_local_folder_loads_the_saved_weights(model_folder: Path):
    a = Encoder(ModelSpec(str(model_folder)).normalised())
    b = Encoder(ModelSpec(str(model_folder)).normalised())
    texts = a.encode_texts(["a red circle", "a blue square"])
    assert texts.shape == (2, 64) and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(texts, b.encode_texts(["a red circle", "a blue square"]), atol=1e-6)
    img = a.encode_images([Image.new("RGB", (50, 40), "red")])
    assert img.shape == (1, 64)


def test_folder_without_weights_is_refused(tmp_path: Path, model_folder: Path):
    empty = tmp_path / "noweights"
    empty.mkdir()
    (empty / "open_clip_config.json").write_text((model_folder / "open_clip_config.json").read_text())
    with pytest.raises(ModelUnavailableError, match="no weights"):
        Encoder(ModelSpec(str(empty)).normalised())


def test_never_silently_random():
    with pytest.raises(ConfigError, match="pretrained"):
        Encoder(ModelSpec("mmsearch-tiny"))
    with pytest.raises(ModelUnavailableError, match="unknown model"):
        Encoder(ModelSpec("no-such-model", "x"))


def test_unreachable_hub_weights_say_how_to_use_a_local_checkpoint():
    # The test environment is offline (HF_HUB_OFFLINE=1 in conftest), as CI is.
    with pytest.raises(ModelUnavailableError, match="local checkpoint"):
        Encoder(ModelSpec("ViT-B-32", "laion2b_s34b_b79k"))


def test_an_index_refuses_another_model(tmp_path: Path, model_folder: Path):
    folder = tmp_path / "photos"
    write_images(folder, 3)
    settings = make_settings(tmp_path, name=str(model_folder), random_weights=False)
    engine = Engine.open(settings, create=True)
    index_folder(folder, engine.encoder, engine.store, settings.indexer)
    engine.close()

    reopened = Engine.open(make_settings(tmp_path, name=None, random_weights=False))  # the index's model
    assert reopened.encoder.spec.local_dir == model_folder and len(reopened.search_text("a", k=3)) == 3
    reopened.close()
    with pytest.raises(ModelMismatchError, match="was made with"):
        Engine.open(make_settings(tmp_path))  # random weights of the same architecture
    # Refused by fingerprint before any download.
    tag = "laion2b_s34b_b79k"
    hub_tag = make_settings(tmp_path, name="ViT-B-32", pretrained=tag, random_weights=False)
    with pytest.raises(ModelMismatchError):
        Engine.open(hub_tag)


def test_fast_preprocess_gives_the_models_own_numbers():
    encoder = Encoder(ModelSpec("test-vit", random_weights=True))
    _, _, reference = open_clip.create_model_and_transforms("test-vit")
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 255, (90, 40), dtype=np.uint8), "L"),
        Image.new("RGBA", (64, 64), (10, 200, 30, 128)),
    ]
    assert type(encoder.preprocess).__name__ == "FastTail"
    for image in images:
        fast, ref = encoder.preprocess(image), reference(image).numpy()
        assert fast.shape == ref.shape == (3, 32, 32) and fast.dtype == ref.dtype == np.float32
        assert float(np.abs(fast - ref).max()) < 1e-5


def test_text_encoding_cuts_the_padding_without_changing_a_vector(shapes_model):
    """Short queries skip the padded positions of the 77-token context (the causal text tower never
    reads them); the vectors equal open_clip's own full-length encode_text."""
    import torch

    from mmsearch.encode.models import Encoder, _causal_clip
    from mmsearch.encode.spec import ModelSpec

    encoder = Encoder(ModelSpec(str(shapes_model)), "cpu", batch_size=8, backend="torch")
    assert _causal_clip(encoder.model)
    texts = ["red", "a small blue square on a striped background", "x " * 200, "a green triangle"]
    with torch.inference_mode():
        full = encoder.model.encode_text(encoder.tokenizer(texts), normalize=True).numpy()
    ours = encoder.encode_texts(texts)
    np.testing.assert_allclose(ours, full, atol=2e-5)
