"""The encoder on a CUDA GPU: half precision in large batches, the same vectors as float32 on the CPU
within fp16 noise, and a folder indexed on the GPU ranking as the CPU's does. Skipped, with the reason,
where torch sees no CUDA device (CI has none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmsearch import Engine, ModelSpec, Settings
from mmsearch.config import ModelSettings
from mmsearch.encode.models import Encoder
from mmsearch.indexer import index_folder
from tests.conftest import write_images

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU: torch sees no CUDA device")
MODEL = {"name": "mmsearch-tiny", "random_weights": True}
TEXTS = ["a red circle", "a blue square on grey", "the harbour at dawn", "word " * 90]


def _encoder(**kw) -> Encoder:
    s = ModelSettings(**MODEL, **kw)
    return Encoder.for_spec(ModelSpec.from_settings(s), s)


@needs_cuda
def test_cuda_encoder_is_half_precision_and_close_to_cpu_float32():
    gpu = _encoder(device="cuda", batch_size=256)
    cpu = _encoder(device="cpu", backend="torch")
    assert (gpu.device.type, gpu.dtype, cpu.dtype) == ("cuda", torch.float16, torch.float32)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40 + i % 7, 50, 3), dtype=np.uint8)) for i in range(300)]
    on_gpu, on_cpu = gpu.encode_images(images), cpu.encode_images(images)
    assert on_gpu.dtype == np.float32 and on_gpu.shape == on_cpu.shape
    np.testing.assert_allclose(np.linalg.norm(on_gpu, axis=1), 1.0, atol=1e-3)
    assert float((on_gpu * on_cpu).sum(1).min()) >= 0.99
    texts_gpu, texts_cpu = gpu.encode_texts(TEXTS), cpu.encode_texts(TEXTS)
    assert float((texts_gpu * texts_cpu).sum(1).min()) >= 0.99


@needs_cuda
def test_a_folder_indexed_on_the_gpu_ranks_as_on_the_cpu(tmp_path: Path):
    folder = tmp_path / "images"
    write_images(folder, 60)
    ranked = {}
    for device in ("cuda", "cpu"):
        settings = Settings(index_dir=tmp_path / device, model={**MODEL, "device": device})
        engine = Engine.open(settings, create=True)
        try:
            assert str(engine.encoder.device).split(":")[0] == device
            assert index_folder(folder, engine.encoder, engine.store, settings.indexer).indexed == 60
            ranked[device] = [h.uri for h in engine.search_text("a red square", k=10)]
        finally:
            engine.close()
    assert ranked["cuda"][0] in ranked["cpu"][:3]
    assert len(set(ranked["cuda"]) & set(ranked["cpu"])) >= 7
