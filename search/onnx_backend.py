"""ONNX Runtime towers for an open_clip model: exported once, cached by the model's fingerprint.

The image and text towers are exported separately (each with its L2 normalisation inside the graph),
so a search that only embeds text can open the text tower alone. Export keys: the model fingerprint
names the folder (new weights, new folder) and a hash of the exporter's inputs (this module's format
version, torch and open_clip versions) tells exports of the same weights by different code apart.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import open_clip
import torch

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the exported graphs change
OPSET = 17
IMAGE, TEXT = "image", "text"


def missing() -> str | None:
    """Why the ONNX backend cannot run here, or None when it can."""
    for module in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} cannot be imported ({exc}); pip install 'mmsearch[onnx]'"
    return None


def default_cache_root(local_dir: Path | None) -> Path:
    """Next to a writable local model folder; else the user's cache (hub and random-weight models)."""
    if local_dir is not None and os.access(local_dir, os.W_OK):
        return local_dir / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmsearch" / "onnx"


def cache_folder(root: Path, fingerprint: str) -> Path:
    exporter = f"{EXPORT_FORMAT}|{OPSET}|{torch.__version__}|{open_clip.__version__}"
    return root / f"{fingerprint}-{hashlib.sha256(exporter.encode()).hexdigest()[:8]}"


def tower_path(folder: Path, tower: str, int8: bool) -> Path:
    return folder / f"{tower}{'.int8' if int8 else ''}.onnx"


class _ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


class _TextTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=True)


@contextmanager
def _exportable() -> Iterator[None]:
    """The legacy (TorchScript) exporter, which needs no onnxscript, cannot export the fused attention
    kernel that nn.MultiheadAttention takes in inference; switch that fast path off while exporting."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation of the legacy exporter, tracer notes
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export_one(module: torch.nn.Module, example: torch.Tensor, name: str, path: Path) -> None:
    """Write one tower with a dynamic batch axis; the rename makes the file appear whole or not at all."""
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    torch.onnx.export(
        module,
        (example,),
        str(tmp),
        input_names=[name],
        output_names=["embedding"],
        dynamic_axes={name: {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    os.replace(tmp, path)


def export(model: torch.nn.Module, tokens: torch.Tensor, image_size: int, folder: Path) -> float:
    """Export both towers of a float32 CPU model into `folder`; returns the seconds it took."""
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    pixels = torch.zeros(2, 3, image_size, image_size)
    with _exportable():
        _export_one(_ImageTower(model), pixels, "pixels", tower_path(folder, IMAGE, False))
        _export_one(_TextTower(model), tokens, "tokens", tower_path(folder, TEXT, False))
    return time.perf_counter() - start


def quantise(folder: Path) -> float:
    """int8 dynamic quantisation of both towers' matrix products (weights int8, activations quantised
    per batch); returns the seconds it took. Only MatMul: quantising every op type (the convolution and
    the embedding lookup too) made the ViT-B-32-256 image tower about half as fast on a 2-core Xeon."""
    start = time.perf_counter()
    with _quiet_quantiser():
        for tower in (IMAGE, TEXT):
            _quantise_one(tower_path(folder, tower, False), tower_path(folder, tower, True))
    return time.perf_counter() - start


def _quantise_one(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(f".tmp-{os.getpid()}")
    quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    os.replace(tmp, target)


class _NotFromOnnxRuntime(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


@contextmanager
def _quiet_quantiser() -> Iterator[None]:
    """quantize_dynamic logs per-tensor notes and a hint to run its pre-processing (whose shape
    inference fails on these graphs) on the root logger."""
    quiet = _NotFromOnnxRuntime()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)


def is_cached(folder: Path, int8: bool) -> bool:
    return all(tower_path(folder, tower, int8).is_file() for tower in (IMAGE, TEXT))


def session(path: Path, threads: int):
    """A CPU session with every graph optimisation; idle threads sleep instead of spinning, since
    the indexer's decode threads share the cores."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxTowers:
    """Both towers in ONNX Runtime; outputs are (n, dim) float32 unit vectors."""

    def __init__(self, folder: Path, int8: bool, threads: int):
        self.folder = folder
        self.int8 = int8
        self.image = session(tower_path(folder, IMAGE, int8), threads)
        self.text = session(tower_path(folder, TEXT, int8), threads)

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        return self.image.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})[0]

    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        return self.text.run(None, {"tokens": np.ascontiguousarray(tokens, np.int64)})[0]


def prepare(model: torch.nn.Module, tokens: torch.Tensor, image_size: int, folder: Path, int8: bool) -> None:
    """Make sure the folder holds the towers asked for, exporting (and quantising) only what is missing."""
    if not is_cached(folder, False):
        log.info("exporting the model's towers to ONNX in %s (once per model)", folder)
        log.info("exported in %.1f s", export(model, tokens, image_size, folder))
    if int8 and not is_cached(folder, True):
        log.info("quantised to int8 in %.1f s", quantise(folder))
