"""Encoder: one open_clip model that turns images and texts into L2-normalised float32 vectors."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import open_clip
import torch
from huggingface_hub import constants as hub_constants
from PIL import Image
from torchvision.transforms import Compose, Normalize

from mmsearch.config import Backend, ModelSettings, QueryBackend
from mmsearch.encode import onnx_export, onnx_towers, query_tower
from mmsearch.encode.base import AUTO_MIN_PARAMS, ONNX_BACKENDS, EncoderBase
from mmsearch.encode.hub import offline_if_unreachable
from mmsearch.encode.query_tower import QueryTower
from mmsearch.encode.spec import LOCAL_CONFIG, MODEL_CONFIGS, RANDOM_SEED, ModelSpec, weights_in
from mmsearch.errors import ConfigError, ModelUnavailableError

log = logging.getLogger(__name__)

# Our own small architectures (e.g. mmsearch-tiny, the model tests and the offline demo train) join
# open_clip's registry, so they build by name like any built-in.
open_clip.add_model_config(MODEL_CONFIGS)


def pick_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class _FromOpenClip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}open_clip{os.sep}" not in record.pathname


@contextmanager
def open_clip_quiet() -> Iterator[None]:
    """open_clip reports through the root logger: a failed download as an ERROR before the exception
    that we turn into one plain message, and "initialized randomly" when random weights are what was
    asked for. Its records are dropped while it builds a model, so the user reads each thing once."""
    root = logging.getLogger()
    quiet = _FromOpenClip()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _load(spec: ModelSpec, device: torch.device) -> tuple[torch.nn.Module, Callable, Callable]:
    """Build model, preprocessing and tokenizer, refusing to fall back to random weights silently."""
    precision = "fp16" if device.type == "cuda" else "fp32"
    if spec.local_dir is not None:
        if not (spec.local_dir / LOCAL_CONFIG).is_file():
            raise ModelUnavailableError(f"{spec.local_dir} is not a model folder: {LOCAL_CONFIG} missing")
        weights_in(spec.local_dir)
        ident = f"local-dir:{spec.local_dir}"
        with open_clip_quiet():
            model, _, preprocess = open_clip.create_model_and_transforms(
                ident, precision=precision, device=device
            )
        return model, preprocess, open_clip.get_tokenizer(ident)
    if spec.name not in open_clip.list_models():
        raise ModelUnavailableError(
            f"unknown model {spec.name!r}: neither an open_clip model name nor a model folder"
        )
    if spec.random_weights:
        torch.manual_seed(RANDOM_SEED)
        pretrained = None
    elif not spec.pretrained:
        raise ConfigError(f"model {spec.name} needs a pretrained tag or checkpoint (or random weights)")
    else:
        pretrained = spec.pretrained
        if not Path(pretrained).is_file():
            offline_if_unreachable()
    try:
        with open_clip_quiet():
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.name, pretrained=pretrained, precision=precision, device=device
            )
    except Exception as exc:  # hub errors come in many types: urllib, requests, huggingface_hub
        if hub_constants.HF_HUB_OFFLINE and not Path(spec.pretrained).is_file():
            why = "they are not on this machine, and the model hub cannot be reached to fetch them"
        else:
            why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        raise ModelUnavailableError(
            f"cannot load the {spec.name} weights {spec.pretrained!r}: {why}. Without network access, use "
            "a local checkpoint (--model NAME --pretrained /path/to/file.pt) or a local model folder "
            "(--model /path/to/folder, e.g. one written by `mmsearch train`)."
        ) from exc
    return model, preprocess, open_clip.get_tokenizer(spec.name)


class FastTail:
    """The model's own preprocessing, with its ToTensor + Normalize tail done in one numpy pass.

    torchvision spends about 10 ms per 224 px image in those two steps on a small CPU, as much as
    decoding the JPEG; this takes under 1 ms and gives the same numbers (to float32 rounding). The
    resize and crop steps stay the model's own.
    """

    def __init__(self, transform: Callable):
        *self.head, to_tensor, normalize = transform.transforms
        if not isinstance(normalize, Normalize) or "ToTensor" not in type(to_tensor).__name__:
            raise TypeError("not a resize / crop / to-tensor / normalize transform")
        self.tail = Compose([to_tensor, normalize])
        std, mean = np.asarray(normalize.std, np.float32), np.asarray(normalize.mean, np.float32)
        self.scale, self.offset = 1.0 / (255.0 * std), -mean / std

    def __call__(self, image: Image.Image) -> np.ndarray:
        for step in self.head:
            image = step(image)
        if not isinstance(image, Image.Image) or image.mode != "RGB":
            return self.tail(image).numpy()
        pixels = np.asarray(image, np.float32) * self.scale + self.offset
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def fast_preprocess(transform: Callable) -> Callable[[Image.Image], np.ndarray]:
    try:
        return FastTail(transform)
    except (AttributeError, TypeError, ValueError):
        return lambda image: transform(image).numpy()


class Encoder(EncoderBase):
    """Owns device, backend, preprocessing and batching; outputs (n, dim) float32 unit vectors.

    Backends (`backend`, chosen by `choose_backend`): torch as loaded (fp32 on the CPU, fp16 on CUDA),
    torch with bfloat16 weights, or ONNX Runtime with fp32 or int8 towers exported from the same weights.
    All give the same embedding space, so the backend is not part of the model's fingerprint. With an
    ONNX backend the torch weights are freed once the towers run, and `model` keeps only `logit_scale`.
    """

    def __init__(
        self,
        spec: ModelSpec,
        device: str = "auto",
        batch_size: int = 32,
        threads: int | None = None,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
        query_backend: QueryBackend = "auto",
    ):
        if threads:
            torch.set_num_threads(threads)
        self.spec = spec
        self.device = _device_for(backend, pick_device(device))
        self.batch_size = batch_size
        self.fingerprint = spec.fingerprint
        self.model, transform, self.tokenizer = _load(spec, self.device)
        self.model.eval()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.image_size = _image_size(self.model)
        self.context_length = getattr(self.tokenizer, "context_length", 77)
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["probe"]).to(self.device)).shape[-1])
        self.preprocess = fast_preprocess(transform)
        self.backend = choose_backend(backend, self.device, self.params)
        self.towers: onnx_towers.OnnxTowers | None = None
        self.on_batch: Callable[[str, float], None] | None = None  # (kind, seconds) per batch: metrics
        self.query_backend = choose_query_backend(query_backend, self.device, self.params)
        self.query_tower = self._start_query_tower(cache_dir, threads)  # before _start_backend frees weights
        self._start_backend(cache_dir, threads, auto=backend == "auto")
        self.dtype = _weights_dtype(self.model)

    @classmethod
    def from_settings(cls, s: ModelSettings) -> Encoder:
        return cls.for_spec(ModelSpec.from_settings(s), s)

    @classmethod
    def for_spec(cls, spec: ModelSpec, s: ModelSettings) -> Encoder:
        onnx = s.onnx_cache_dir or onnx_towers.default_cache_root(spec.local_dir, s.cache_dir)
        return cls(spec, s.device, s.batch_size, s.threads, s.backend, onnx, s.query_backend)

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature (the exponent of the stored log)."""
        return float(self.model.logit_scale.detach().exp())

    def record(self) -> dict:
        """What an index folder stores about the model that made it (the backend is for information)."""
        return {
            **asdict(self.spec),
            "dim": self.dim,
            "fingerprint": self.fingerprint,
            "params": self.params,
            "backend": self.backend,
            "query_backend": self.query_backend,
            "text_model": self.text_model_record(),
        }

    def _start_backend(self, cache_dir: Path | None, threads: int | None, auto: bool) -> None:
        if self.backend == "torch-bf16":
            if self.device.type == "cpu" and not native_bf16():
                log.warning("this CPU has no native bfloat16 (AVX512-BF16 / AMX): torch-bf16 is emulated")
            self.model.to(torch.bfloat16)
        elif self.backend in ONNX_BACKENDS:
            int8 = self.backend == "onnx-int8"
            try:
                folder = self._exported(cache_dir, int8)
            except Exception as exc:  # exporter errors have no common base class
                log.warning("ONNX backend unavailable, using torch: %s: %s", type(exc).__name__, exc)
                self.backend = "torch"
                return
            if auto and int8 and not _int8_passed(onnx_towers.ModelInfo.read(folder)):
                log.warning("the int8 towers are not close enough to float32 torch: auto uses torch")
                self.backend = "torch"
                return
            self.model = _logit_scale_only(self.model)  # before the sessions load: peak memory is one copy
            self.towers = _open_towers(folder, int8, threads or len(os.sched_getaffinity(0)))

    def _start_query_tower(self, cache_dir: Path | None, threads: int | None) -> QueryTower | None:
        """The int8 query tower from the ONNX cache, exported into it first if need be; None (queries on
        the main backend) when the query backend is torch, or the tower cannot be made or falls short."""
        if self.query_backend == "torch":
            return None
        try:
            folder = self._cache_folder(cache_dir) / query_tower.FOLDER
            meta = query_tower.current(folder, self.fingerprint) or self._export_query_tower(folder)
        except Exception as exc:  # exporter and ONNX Runtime errors have no common base class
            log.warning("no query tower, queries use %s: %s: %s", self.backend, type(exc).__name__, exc)
            meta = None
        if meta is not None and meta.cosine_min < query_tower.MIN_COSINE:
            log.warning("the int8 query tower is not close enough to float32 (%.4f): unused", meta.cosine_min)
            meta = None
        if meta is None:
            self.query_backend = "torch"
            return None
        return QueryTower(folder, meta, threads)

    def _export_query_tower(self, folder: Path) -> query_tower.TowerMeta | None:
        if not onnx_export.supports_query_tower(self.model, self.tokenizer):
            log.warning("no query tower for %s: not a CLIP with a causal text tower", self.spec.label())
            return None
        started = time.perf_counter()
        meta = onnx_export.export_query_tower(self.model, self.tokenizer, folder, self.fingerprint)
        log.info(
            "exported the int8 query tower in %.1f s (cosine to float32 >= %.4f)",
            time.perf_counter() - started,
            meta.cosine_min,
        )
        return meta

    def _cache_folder(self, cache_dir: Path | None) -> Path:
        reason = onnx_towers.missing()
        if reason:
            raise ModuleNotFoundError(reason)
        root = cache_dir or onnx_towers.default_cache_root(self.spec.local_dir)
        return onnx_towers.cache_folder(Path(root), self.fingerprint)

    def _exported(self, cache_dir: Path | None, int8: bool) -> Path:
        """The cache folder of this model's ONNX towers, exported into it first if need be."""
        folder = self._cache_folder(cache_dir)
        info = onnx_towers.ModelInfo.read(folder)
        if not onnx_towers.is_cached(folder, int8) or (int8 and info.int8_cosine_min is None):
            tokens = self.tokenizer(list(onnx_export.PROBE_TEXTS))
            pixels = torch.from_numpy(np.stack([self.preprocess(im) for im in probe_images()]))
            info = onnx_export.model_info(self.model, self.dim, self.params, self.image_size)
            onnx_export.prepare(self.model, tokens, pixels, info, folder, int8)
        return folder

    def _image_chunk(self, pixels: np.ndarray) -> np.ndarray:
        if self.towers is not None:
            return self.towers.encode_image(pixels)
        with torch.inference_mode():
            out = self.model.encode_image(
                torch.from_numpy(pixels).to(self.device, self.dtype), normalize=True
            )
        return out.float().cpu().numpy()

    @torch.inference_mode()
    def _text_chunk(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts)
        if self.towers is not None:
            return self.towers.encode_text(tokens.numpy())
        if _causal_clip(self.model):
            return _encode_text_trimmed(self.model, tokens.to(self.device)).float().cpu().numpy()
        return self.model.encode_text(tokens.to(self.device), normalize=True).float().cpu().numpy()

    def token_count(self, text: str) -> int:
        """Tokens the text tower reads for `text`, start and end markers not counted."""
        if hasattr(self.tokenizer, "encode"):  # open_clip's own BPE tokenizer
            return len(self.tokenizer.encode(text))
        return len(self.tokenizer.tokenizer(text, add_special_tokens=False)["input_ids"])  # HF tokenizers


def _causal_clip(model: torch.nn.Module) -> bool:
    """open_clip's CLIP text tower: causal attention, pooled at the end-of-text token (the highest id)."""
    return (
        isinstance(model, open_clip.model.CLIP)
        and getattr(model, "text_pool_type", None) == "argmax"
        and getattr(model, "attn_mask", None) is not None
    )


def _encode_text_trimmed(model: open_clip.model.CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP's encode_text over only the positions up to the batch's last end-of-text token. Attention is
    causal, so the padding after it never reaches the pooled position: the vectors are the same, and a
    short query costs a fraction of the 77-token context (ViT-B-32 text tower: 60 ms -> 8 ms, 2 cores)."""
    n = int(tokens.argmax(dim=1).max()) + 1
    tokens = tokens[:, :n]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
    x = open_clip.transformer.text_global_pool(x, tokens, model.text_pool_type)
    if isinstance(model.text_projection, torch.nn.Linear):
        x = model.text_projection(x)
    elif model.text_projection is not None:
        x = x @ model.text_projection
    return torch.nn.functional.normalize(x, dim=-1)


def _device_for(backend: Backend, device: torch.device) -> torch.device:
    """ONNX backends run on ONNX Runtime's CPU provider, from a float32 CPU copy of the model."""
    if backend in ONNX_BACKENDS and device.type != "cpu":
        log.warning("backend %s runs on the CPU, not %s", backend, device.type)
        return torch.device("cpu")
    return device


def native_bf16() -> bool:
    """Whether the CPU has bfloat16 dot-product instructions; elsewhere torch emulates bf16, slower
    than float32."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def choose_backend(requested: Backend, device: torch.device, params: int) -> Backend:
    """The backend for `auto`, by fixed rules so a machine always makes the same choice for a model:
    torch off the CPU and for small models (tests keep torch's exact numbers); on CPUs the int8 ONNX
    towers (twice torch float32's speed on a 2-core Xeon), which the encoder still drops for torch when
    they miss cosine 0.99 against float32 on its probe inputs; without ONNX Runtime, bf16 torch on CPUs
    with native bf16, else float32 torch (docs/models.md)."""
    if requested != "auto":
        return requested
    if device.type != "cpu" or params < AUTO_MIN_PARAMS:
        return "torch"
    if onnx_towers.missing() is None:
        return "onnx-int8"
    return "torch-bf16" if native_bf16() else "torch"


def _int8_passed(info: onnx_towers.ModelInfo | None) -> bool:
    return info is not None and (info.int8_cosine_min or 0.0) >= query_tower.MIN_COSINE


def probe_images() -> list[Image.Image]:
    """Fixed pictures the int8 towers are checked on: coloured shapes, a gradient, noise."""
    from mmsearch.synth.shapes import classes, render

    rng = np.random.default_rng(0)
    shapes = [render(colour, shape, rng, size=160) for colour, shape in classes()[::3]]
    ramp = np.linspace(0, 255, 160, dtype=np.float32)
    gradient = np.stack(
        [ramp[None, :].repeat(160, 0), ramp[:, None].repeat(160, 1), 255 - ramp[None, :].repeat(160, 0)], -1
    )
    noise = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    return [*shapes, Image.fromarray(gradient.astype(np.uint8)), Image.fromarray(noise)]


def choose_query_backend(requested: QueryBackend, device: torch.device, params: int) -> QueryBackend:
    """The int8 query tower for `auto` on CPUs, for models as large as `auto` moves off float32 torch
    (small models keep torch's exact numbers); torch on GPUs, where a query costs little anyway."""
    if requested != "auto":
        return requested
    if device.type != "cpu" or params < AUTO_MIN_PARAMS or onnx_towers.missing() is not None:
        return "torch"
    return "onnx-int8"


def planned_backend(s: ModelSettings, params: int) -> Backend:
    """The backend an Encoder built from these settings picks for a model of `params` parameters,
    before any fallback (a failed export falls back to torch)."""
    return choose_backend(s.backend, _device_for(s.backend, pick_device(s.device)), params)


def planned_query_backend(s: ModelSettings, params: int) -> QueryBackend:
    """The query backend an Encoder built from these settings picks, before any fallback."""
    return choose_query_backend(s.query_backend, _device_for(s.backend, pick_device(s.device)), params)


def _open_towers(folder: Path, int8: bool, threads: int) -> onnx_towers.OnnxTowers:
    try:
        return onnx_towers.OnnxTowers(folder, int8, threads)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
        raise ModelUnavailableError(
            f"cannot open the ONNX towers in {folder} ({type(exc).__name__}: {exc}); "
            "delete that folder to export them again, or use the torch backend"
        ) from exc


def _logit_scale_only(model: torch.nn.Module) -> torch.nn.Module:
    """What callers still read from the torch model when ONNX Runtime runs both towers."""
    shell = torch.nn.Module()
    shell.logit_scale = model.logit_scale
    return shell


def _weights_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype pixels must be given in: that of the matrix weights. open_clip's fp16 (on CUDA) keeps
    embeddings, norms and the logit scale in float32, so the first parameter does not tell."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            return module.weight.dtype
    return next(model.parameters()).dtype


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, tuple | list) else size)
