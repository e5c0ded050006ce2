"""Encoder: one open_clip model that turns images and texts into L2-normalised float32 vectors."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize

from search.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelSettings
from search.errors import ConfigError, ModelUnavailableError
from search.hub import offline_if_unreachable

log = logging.getLogger(__name__)

RANDOM_SEED = 0
LOCAL_CONFIG = "open_clip_config.json"
MODEL_CONFIGS = Path(__file__).with_name("model_configs")

# Our own small architectures (e.g. mmsearch-tiny, the model tests and the offline demo train) join
# open_clip's registry, so they build by name like any built-in.
open_clip.add_model_config(MODEL_CONFIGS)


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights come from: an open_clip name with a pretrained tag or checkpoint file,
    a local model folder (config + weights), or random weights (only when asked for)."""

    name: str
    pretrained: str | None = None
    random_weights: bool = False

    @classmethod
    def from_settings(cls, s: ModelSettings) -> ModelSpec:
        name = s.name or DEFAULT_MODEL
        pretrained = s.pretrained
        if s.name is None and pretrained is None and not s.random_weights:
            pretrained = DEFAULT_PRETRAINED
        return cls(name, pretrained, s.random_weights).normalised()

    def normalised(self) -> ModelSpec:
        """Local folders and checkpoint files are recorded by absolute path."""
        name = self.name.removeprefix("local-dir:")
        if Path(name).is_dir():
            return ModelSpec(str(Path(name).resolve()), None, self.random_weights)
        pretrained = self.pretrained
        if pretrained and Path(pretrained).is_file():
            pretrained = str(Path(pretrained).resolve())
        return ModelSpec(self.name, pretrained, self.random_weights)

    @property
    def local_dir(self) -> Path | None:
        path = Path(self.name)
        return path if path.is_absolute() and path.is_dir() else None

    def label(self) -> str:
        if self.random_weights:
            return f"{self.name} (random weights)"
        return f"{self.name}:{self.pretrained}" if self.pretrained else self.name

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the weights: tag for hub weights, content hash for local files, seed for random."""
        if self.random_weights:
            source = f"random:{RANDOM_SEED}"
        elif self.local_dir is not None:
            source = _sha256(_weights_in(self.local_dir))
        elif self.pretrained and Path(self.pretrained).is_file():
            source = _sha256(Path(self.pretrained))
        else:
            source = f"tag:{self.pretrained}"
        digest = hashlib.sha256(f"{self.name}|{source}".encode()).hexdigest()
        return digest[:16]


def _weights_in(folder: Path) -> Path:
    for pattern in ("*.safetensors", "*.bin", "*.pth", "*.pt"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise ModelUnavailableError(f"model folder {folder} has no weights file (*.safetensors, *.bin, *.pt)")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def pick_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _load(spec: ModelSpec, device: torch.device) -> tuple[torch.nn.Module, Callable, Callable]:
    """Build model, preprocessing and tokenizer, refusing to fall back to random weights silently."""
    precision = "fp16" if device.type == "cuda" else "fp32"
    if spec.local_dir is not None:
        if not (spec.local_dir / LOCAL_CONFIG).is_file():
            raise ModelUnavailableError(f"{spec.local_dir} is not a model folder: {LOCAL_CONFIG} missing")
        _weights_in(spec.local_dir)
        ident = f"local-dir:{spec.local_dir}"
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
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.name, pretrained=pretrained, precision=precision, device=device
        )
    except Exception as exc:  # hub errors come in many types: urllib, requests, huggingface_hub
        raise ModelUnavailableError(
            f"cannot load weights {spec.pretrained!r} for {spec.name} ({type(exc).__name__}: {exc}). "
            "Without network access, use a local checkpoint (--model NAME --pretrained /path/to/file.pt) "
            "or a local model folder (--model /path/to/folder, e.g. one written by `mmsearch train`)."
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

    def __call__(self, image: Image.Image) -> torch.Tensor:
        for step in self.head:
            image = step(image)
        if not isinstance(image, Image.Image) or image.mode != "RGB":
            return self.tail(image)
        pixels = np.asarray(image, np.float32) * self.scale + self.offset
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def fast_preprocess(transform: Callable) -> Callable:
    try:
        return FastTail(transform)
    except (AttributeError, TypeError, ValueError):
        return transform


class Encoder:
    """Owns device, dtype, preprocessing and batching; outputs (n, dim) float32 unit vectors."""

    def __init__(
        self, spec: ModelSpec, device: str = "auto", batch_size: int = 32, threads: int | None = None
    ):
        if threads:
            torch.set_num_threads(threads)
        self.spec = spec
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.model, transform, self.tokenizer = _load(spec, self.device)
        self.preprocess = fast_preprocess(transform)
        self.model.eval()
        self.dtype = next(self.model.parameters()).dtype
        self.image_size = _image_size(self.model)
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["probe"]).to(self.device)).shape[-1])
        self.fingerprint = spec.fingerprint

    @classmethod
    def from_settings(cls, s: ModelSettings) -> Encoder:
        return cls(ModelSpec.from_settings(s), s.device, s.batch_size, s.threads)

    def record(self) -> dict:
        """What an index folder stores about the model that made it."""
        return {**asdict(self.spec), "dim": self.dim, "fingerprint": self.fingerprint}

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Encode a batch of already preprocessed images (n, 3, H, W)."""
        out = []
        for start in range(0, len(pixels), self.batch_size):
            chunk = pixels[start : start + self.batch_size].to(self.device, self.dtype)
            out.append(self.model.encode_image(chunk, normalize=True).float().cpu())
        return _unit(torch.cat(out)) if out else np.zeros((0, self.dim), np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(torch.stack([self.preprocess(im) for im in images]))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
            out.append(self.model.encode_text(tokens, normalize=True).float().cpu())
        return _unit(torch.cat(out)) if out else np.zeros((0, self.dim), np.float32)

    def token_count(self, text: str) -> int:
        """Tokens the text tower reads for `text`, start and end markers not counted."""
        if hasattr(self.tokenizer, "encode"):  # open_clip's own BPE tokenizer
            return len(self.tokenizer.encode(text))
        return len(self.tokenizer.tokenizer(text, add_special_tokens=False)["input_ids"])  # HF tokenizers

    def split_text(self, text: str) -> list[str]:
        """Runs of whole words that each fit the text tower's context; the tower cuts longer texts off."""
        limit = max(1, getattr(self.tokenizer, "context_length", 77) - 2)
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


def _unit(x: torch.Tensor) -> np.ndarray:
    # Re-normalise in float32: fp16 encoders return vectors whose norm is off by ~1e-3.
    arr = x.numpy().astype(np.float32, copy=False)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, tuple | list) else size)
