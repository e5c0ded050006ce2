"""Encoders without torch: what every encoder does alike (`EncoderBase`: batching, timing hooks, unit
vectors, token counts), and `OnnxEncoder`, which runs a model's cached ONNX towers with the model's own
preprocessing done in PIL and numpy and its tokens from the query tower's tokenizer.

Once the torch Encoder (search/models.py) has exported and checked a model's towers, `open_encoder`
serves and indexes with them without importing torch or open_clip: about 750 MiB less memory (what
those imports map on their own) and seconds less start-up.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mmsearch import query_tower
from mmsearch.onnx_towers import ModelInfo, OnnxTowers, cache_folder, default_cache_root, is_cached

if TYPE_CHECKING:
    from mmsearch.config import ModelSettings
    from mmsearch.spec import ModelSpec

AUTO_MIN_PARAMS = 20_000_000  # `auto` keeps smaller models (tests, the shapes demo) on float32 torch
ONNX_BACKENDS = ("onnx", "onnx-int8")


class EncoderBase:
    """Batching, metrics hook and unit vectors around a subclass's `_image_chunk` / `_text_chunk`."""

    dim: int
    batch_size: int
    query_tower: query_tower.QueryTower | None
    on_batch: Callable[[str, float], None] | None  # (kind, seconds) per batch: metrics
    # One picture as the image tower reads it, (3, H, W) float32: a picklable function, not a method,
    # so that Ray can ship it to decode tasks without the encoder.
    preprocess: Callable[[Image.Image], np.ndarray]
    context_length = 77  # tokens the text tower reads, start and end markers included

    def _image_chunk(self, pixels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _text_chunk(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def token_count(self, text: str) -> int:
        """Tokens the text tower reads for `text`, start and end markers not counted."""
        raise NotImplementedError

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Encode a batch of already preprocessed images (n, 3, H, W)."""
        chunks = [pixels[i : i + self.batch_size] for i in range(0, len(pixels), self.batch_size)]
        return self._joined([self._timed("image", self._image_chunk, chunk) for chunk in chunks])

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        chunks = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return self._joined([self._timed("text", self._text_chunk, chunk) for chunk in chunks])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Search queries: the int8 query tower when there is one (search/query_tower.py), else the
        main backend. What is indexed (transcripts, fields) always goes through encode_texts."""
        if self.query_tower is None:
            return self.encode_texts(texts)
        chunks = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return self._joined([self._timed("text", self.query_tower.encode_texts, chunk) for chunk in chunks])

    def _timed(self, kind: str, encode: Callable, chunk) -> np.ndarray:
        started = time.perf_counter()
        out = encode(chunk)
        if self.on_batch is not None:
            self.on_batch(kind, time.perf_counter() - started)
        return out

    def _joined(self, chunks: list[np.ndarray]) -> np.ndarray:
        return query_tower.unit(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), np.float32)

    def split_text(self, text: str) -> list[str]:
        """Runs of whole words that each fit the text tower's context; the tower cuts longer texts off."""
        limit = max(1, self.context_length - 2)
        pieces: list[str] = []
        current: list[str] = []
        for word in text.split():
            if current and self.token_count(" ".join([*current, word])) > limit:
                pieces.append(" ".join(current))
                current = []
            current.append(word)
        if current:
            pieces.append(" ".join(current))
        return pieces


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
        }

    def _image_chunk(self, pixels: np.ndarray) -> np.ndarray:
        return self.towers.encode_image(pixels)

    def _text_chunk(self, texts: list[str]) -> np.ndarray:
        return self.towers.encode_text(self.query_tower.tokens(texts, length=self.context_length))

    def token_count(self, text: str) -> int:
        return self.query_tower.token_count(text)


def open_encoder(spec: ModelSpec, s: ModelSettings):
    """The torch-free OnnxEncoder when this machine and settings allow it and everything it needs is
    cached and checked; else the torch Encoder (which exports and checks what is missing)."""
    light = _light_encoder(spec, s)
    if light is not None:
        return light
    from mmsearch.models import Encoder

    return Encoder.for_spec(spec, s)


def _light_encoder(spec: ModelSpec, s: ModelSettings) -> OnnxEncoder | None:
    if s.device not in ("auto", "cpu") or (s.device == "auto" and gpu_possible()):
        return None
    if query_tower.runtime_version() is None:
        return None
    folder = cache_folder(Path(s.onnx_cache_dir or default_cache_root(spec.local_dir)), spec.fingerprint)
    info = ModelInfo.read(folder)
    if info is None:
        return None
    backend = s.backend
    if backend == "auto":
        if info.params < AUTO_MIN_PARAMS or (info.int8_cosine_min or 0.0) < query_tower.MIN_COSINE:
            return None
        backend = "onnx-int8"
    if backend not in ONNX_BACKENDS or not is_cached(folder, backend == "onnx-int8"):
        return None
    tower = query_tower.usable(folder / query_tower.FOLDER, spec.fingerprint)
    query_ok = s.query_backend == "onnx-int8" or (
        s.query_backend == "auto" and info.params >= AUTO_MIN_PARAMS
    )
    preprocess = ShortestSideCrop.of(info)
    if tower is None or not query_ok or preprocess is None:
        return None
    return OnnxEncoder(spec, folder, info, backend, tower, preprocess, s.batch_size, s.threads)


def gpu_possible() -> bool:
    """Whether torch might find an accelerator here (an NVIDIA driver, or a Mac): then `auto` devices
    are torch's to choose, and the torch-free encoder steps aside."""
    return sys.platform == "darwin" or Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()
