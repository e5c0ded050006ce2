"""ModelSpec: where a model's weights come from, and the fingerprint that names them. No torch here:
an index's model is resolved, and its cached ONNX towers found, without loading any model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mmsearch.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelSettings
from mmsearch.errors import ModelUnavailableError

RANDOM_SEED = 0  # random weights are seeded: the same "model" every time, so indexes can be reopened
LOCAL_CONFIG = "open_clip_config.json"
MODEL_CONFIGS = Path(__file__).with_name("model_configs")  # our own architectures (mmsearch-tiny)


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
            source = _sha256(weights_in(self.local_dir))
        elif self.pretrained and Path(self.pretrained).is_file():
            source = _sha256(Path(self.pretrained))
        else:
            source = f"tag:{self.pretrained}"
        digest = hashlib.sha256(f"{self.name}|{source}".encode()).hexdigest()
        return digest[:16]


def weights_in(folder: Path) -> Path:
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
