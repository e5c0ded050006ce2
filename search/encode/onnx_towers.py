"""A model's exported ONNX towers as they lie in the cache, and running them: no torch here.

onnx_export.py exports and checks them (with torch); this module finds and runs them, so the torch-free
encoder (onnx_encoder.py) can too. Export keys: the model fingerprint names the folder (new weights, new
folder) and a hash of the exporter's inputs (the export format, torch's and open_clip's versions, read
from their package metadata) tells exports of the same weights by different code apart.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mmsearch.defaults import default_cache_dir
from mmsearch.encode.query_tower import read_record, session, write_record

EXPORT_FORMAT = 2  # bump when the exported graphs or model.json change
OPSET = 17
MODEL_INFO = "model.json"  # what an encoder needs of the model besides the towers
IMAGE, TEXT = "image", "text"


def missing() -> str | None:
    """Why the ONNX backend cannot run here, or None when it can."""
    for module in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} cannot be imported ({exc}): pip install --force-reinstall {module}"
    return None


def default_cache_root(local_dir: Path | None, cache_dir: Path | None = None) -> Path:
    """Next to a writable local model folder; else the cache (ModelSettings.cache_dir: hub and
    random-weight models)."""
    if local_dir is not None and os.access(local_dir, os.W_OK):
        return local_dir / "onnx"
    return (cache_dir or default_cache_dir()) / "onnx"


def cache_folder(root: Path, fingerprint: str) -> Path:
    return root / f"{fingerprint}-{_exporter_key()}"


@functools.cache
def _exporter_key() -> str:
    """The export format and torch's and open_clip's versions, hashed; read from package metadata (not
    by importing them) once per process."""
    versions = "|".join(importlib.metadata.version(d) for d in ("torch", "open_clip_torch"))
    return hashlib.sha256(f"{EXPORT_FORMAT}|{OPSET}|{versions}".encode()).hexdigest()[:8]


def tower_path(folder: Path, tower: str, int8: bool) -> Path:
    return folder / f"{tower}{'.int8' if int8 else ''}.onnx"


def is_cached(folder: Path, int8: bool) -> bool:
    towers = all(tower_path(folder, tower, int8).is_file() for tower in (IMAGE, TEXT))
    return towers and (folder / MODEL_INFO).is_file()


@dataclass(frozen=True)
class ModelInfo:
    """What an encoder reads of the torch model besides its towers: with these beside cached towers,
    an encoder starts without building the model (a ViT-B-32 in float32 is 600 MB)."""

    dim: int
    params: int
    image_size: int
    logit_scale: float  # as stored: the log of CLIP's temperature
    preprocess: dict  # open_clip's PreprocessCfg fields for the model's own image transform
    int8_cosine_min: float | None = None  # the int8 towers against torch float32 on probe inputs

    @classmethod
    def read(cls, folder: Path) -> ModelInfo | None:
        return read_record(cls, folder / MODEL_INFO)

    def write(self, folder: Path) -> None:
        write_record(self, folder / MODEL_INFO)


class OnnxTowers:
    """Both towers in ONNX Runtime; outputs are (n, dim) float32 unit vectors. The text tower's session
    opens on first use: indexing pictures never needs it."""

    def __init__(self, folder: Path, int8: bool, threads: int):
        self.folder = folder
        self.int8 = int8
        self.threads = threads
        self.image = session(tower_path(folder, IMAGE, int8), threads)

    @cached_property
    def text(self):
        return session(tower_path(self.folder, TEXT, self.int8), self.threads)

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        return self.image.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})[0]

    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        return self.text.run(None, {"tokens": np.ascontiguousarray(tokens, np.int64)})[0]
