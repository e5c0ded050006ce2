"""`OnnxEncoder`: a model's cached ONNX towers with the model's own preprocessing done in PIL and numpy
and its tokens from the query tower's tokenizer; no torch in the process.

Once the torch Encoder (encode/models.py) has exported and checked a model's towers, `open_encoder`
(encode/factory.py) serves and indexes with them without importing torch or open_clip: about 750 MiB
less memory (what those imports map on their own) and seconds less start-up.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mmsearch.encode import query_tower
from mmsearch.encode.base import EncoderBase
from mmsearch.encode.onnx_towers import ModelInfo, OnnxTowers

if TYPE_CHECKING:
    from mmsearch.encode.spec import ModelSpec


class ShortestSideCrop:
    """open_clip's evaluation transform for resize mode `shortest` (resize the shorter side, centre
    crop, normalise), in PIL and numpy: torchvision's Resize and CenterCrop on a PIL image are PIL's
    resize and crop with these sizes, so the pixels are the same."""

    FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], interpolation: str):
        self.size = size
        self.filter = self.FILTERS[interpolation]
        std_, mean_ = np.asarray(std, np.float32), np.asarray(mean, np.float32)
        self.scale, self.offset = 1.0 / (255.0 * std_), -mean_ / std_

    @classmethod
    def of(cls, info: ModelInfo) -> ShortestSideCrop | None:
        cfg = info.preprocess
        size = cfg.get("size", info.image_size)
        size = size[0] if isinstance(size, list | tuple) and size[0] == size[-1] else size
        supported = cfg.get("resize_mode", "shortest") == "shortest" and isinstance(size, int)
        if not supported or cfg.get("interpolation", "bicubic") not in cls.FILTERS:
            return None
        return cls(size, cfg["mean"], cfg["std"], cfg.get("interpolation", "bicubic"))

    def __call__(self, image: Image.Image) -> np.ndarray:
        w, h = image.size
        if min(w, h) != self.size:
            short, long = (w, h) if w <= h else (h, w)
            new_long = int(self.size * long / short)
            image = image.resize((self.size, new_long) if w <= h else (new_long, self.size), self.filter)
        w, h = image.size
        left, top = round((w - self.size) / 2.0), round((h - self.size) / 2.0)
        if left < 0 or top < 0:  # torchvision pads a picture smaller than the crop; never seen after resize
            raise ValueError(f"picture of {w}x{h} smaller than the crop {self.size}")
        image = image.crop((left, top, left + self.size, top + self.size)).convert("RGB")
        pixels = np.asarray(image, np.float32) * self.scale + self.offset
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


class OnnxEncoder(EncoderBase):
    """A model's cached, checked ONNX towers, with no torch in the process (see `open_encoder`)."""

    device = "cpu"

    def __init__(
        self,
        spec: ModelSpec,
        folder: Path,
        info: ModelInfo,
        backend: str,
        tower: query_tower.TowerMeta,
        preprocess: ShortestSideCrop,
        batch_size: int = 32,
        threads: int | None = None,
    ):
        threads = threads or len(os.sched_getaffinity(0))
        self.spec = spec
        self.fingerprint = spec.fingerprint
        self.batch_size = batch_size
        self.backend = backend
        self.query_backend = "onnx-int8"
        self.params, self.image_size, self.dim = info.params, info.image_size, info.dim
        self.logit_scale = math.exp(info.logit_scale)
        self.towers = OnnxTowers(folder, backend == "onnx-int8", threads)
        self.query_tower = query_tower.QueryTower(folder / query_tower.FOLDER, tower, threads)
        self.context_length = tower.context_length
        self.preprocess = preprocess
        self.on_batch = None

    def record(self) -> dict:
        return {
            "name": self.spec.name,
            "pretrained": self.spec.pretrained,
            "random_weights": self.spec.random_weights,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
            "params": self.params,
            "backend": self.backend,
            "query_backend": self.query_backend,
            "text_model": self.text_model_record(),
        }

    def _image_chunk(self, pixels: np.ndarray) -> np.ndarray:
        return self.towers.encode_image(pixels)

    def _text_chunk(self, texts: list[str]) -> np.ndarray:
        return self.towers.encode_text(self.query_tower.tokens(texts, length=self.context_length))

    def token_count(self, text: str) -> int:
        return self.query_tower.token_count(text)
