"""`open_encoder`: the encoder an index or a server runs with. The torch-free OnnxEncoder when this
machine and the settings allow it and everything it needs is cached and checked; else the torch Encoder,
imported only then (torch and open_clip are most of a process's start-up and memory).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.encode import query_tower, sentences
from mmsearch.encode.base import AUTO_MIN_PARAMS, ONNX_BACKENDS
from mmsearch.encode.onnx_encoder import OnnxEncoder, ShortestSideCrop
from mmsearch.encode.onnx_towers import ModelInfo, cache_folder, default_cache_root, is_cached
from mmsearch.encode.sentences import CLIP, DEFAULT_TEXT_MODEL

if TYPE_CHECKING:
    from mmsearch.config import ModelSettings
    from mmsearch.encode.spec import ModelSpec


def open_encoder(spec: ModelSpec, s: ModelSettings):
    """The torch-free OnnxEncoder when this machine and settings allow it and everything it needs is
    cached and checked; else the torch Encoder (which exports and checks what is missing). With the text
    model of `s.text_model` for words (unset: the default one; "clip": the picture model's text tower)."""
    encoder = _light_encoder(spec, s)
    if encoder is None:
        from mmsearch.encode.models import Encoder  # torch and open_clip load here, and only here

        encoder = Encoder.for_spec(spec, s)
    text_model = s.text_model or DEFAULT_TEXT_MODEL
    if text_model != CLIP:
        cpu = s.device in ("cpu", "mps") or (s.device == "auto" and not gpu_possible())
        encoder.words = sentences.shared(text_model, "cpu" if cpu else s.device, s.cache_dir)
    return encoder


def _light_encoder(spec: ModelSpec, s: ModelSettings) -> OnnxEncoder | None:
    if s.device not in ("auto", "cpu") or (s.device == "auto" and gpu_possible()):
        return None
    if query_tower.runtime_version() is None:
        return None
    folder = cache_folder(
        Path(s.onnx_cache_dir or default_cache_root(spec.local_dir, s.cache_dir)), spec.fingerprint
    )
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


def uses_kept_tower(s: ModelSettings) -> bool:
    """Whether queries go through a query tower an index holds, whatever the model's size: the `auto`
    query backend on a CPU (Engine.open), as the one-shot search does (search/query/quick.py)."""
    return s.query_backend == "auto" and (s.device == "cpu" or (s.device == "auto" and not gpu_possible()))


def gpu_possible() -> bool:
    """Whether torch might find an accelerator here (an NVIDIA driver, or a Mac): then `auto` devices
    are torch's to choose, and the torch-free encoder steps aside."""
    return sys.platform == "darwin" or Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()
