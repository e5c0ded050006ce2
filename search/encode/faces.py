"""Faces in a picture: where each is, how good a look it gives, and what it looks like as a 128-d vector.

dlib's models, offline in the `[people]` extra (`dlib-bin`, `face-recognition-models`): the HOG frontal
face detector (in dlib itself), the 5-point landmark model that aligns each face, and the face recognition
ResNet (Davis King's; 99.38% on LFW): two faces of one person lie within 0.6 of each other (Euclidean),
faces of two people farther apart. A picture is looked at with its longer side at most MAX_SIDE and
upsampled once, so faces from about 40 pixels up are found; boxes are given in the picture's own pixels.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.errors import ModelUnavailableError

MAX_SIDE = 1024  # obama3.jpg (2333 px high): 1.9 s at full size, 0.3 s at 1024, the same face found
UPSAMPLE = 1  # the detector's own 80 px window then finds faces from 40 px
MIN_SCORE = 0.3  # on the real photo set and the astronaut, the two false faces scored 0.13, every face 0.7+
CHIP_PX = 150  # the aligned face the ResNet reads (dlib's size)
LANDMARKS = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DIM = 128

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in the picture's own pixels


@dataclass(frozen=True)
class Face:
    """One face found: its box, the detector's confidence, its vector, and how good a look it gives."""

    box: Box
    score: float  # the HOG detector's margin: over 0 is a face, over 1 a clear one
    vector: np.ndarray  # float32, DIM
    sharpness: float  # variance of the Laplacian of the aligned face, in grey levels squared

    @property
    def size(self) -> int:
        """The box's shorter side, in pixels: a face 40 px across is a poorer look than one of 200."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def missing() -> str | None:
    """Why faces cannot be read here, or None."""
    if any(importlib.util.find_spec(name) is None for name in ("dlib", "face_recognition_models")):
        return "dlib and its face models are not installed: pip install 'mmsearch[people]'"
    return None


def _models_folder() -> Path:
    """face_recognition_models' data folder, found without importing it (its __init__ needs
    pkg_resources, which newer setuptools no longer carry)."""
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class _Models:
    """dlib's detector, landmark model and network, for one thread: dlib lets the GIL go while they run,
    so each decode thread finds faces at once with its own (a shared set behind a lock took twice as
    long on 2 cores: 4.41 s against 2.26 s for 24 photos)."""

    def __init__(self, folder: Path):
        import dlib

        self.detect = dlib.get_frontal_face_detector()
        self.align = dlib.shape_predictor(str(folder / LANDMARKS))
        self.describe = dlib.face_recognition_model_v1(str(folder / RESNET))
        self.chip = dlib.get_face_chip


class FaceReader:
    """Finds and describes the faces in pictures; one per index run, shared by the decode threads (each
    thread loads its own models on first use)."""

    def __init__(self):
        if (why := missing()) is not None:
            raise ModelUnavailableError(f"cannot find faces: {why}")
        self._folder = _models_folder()
        self._local = threading.local()

    @property
    def _models(self) -> _Models:
        models = getattr(self._local, "models", None)
        if models is None:
            models = self._local.models = _Models(self._folder)
        return models

    def read(self, image: Image.Image, width: int | None = None) -> list[Face]:
        """The faces in `image`, largest first, boxes scaled to a picture `width` pixels wide (the
        file's own width, where `image` was decoded smaller)."""
        rgb = image.convert("RGB")
        if max(rgb.size) > MAX_SIDE:
            side = MAX_SIDE / max(rgb.size)
            rgb = rgb.resize((round(rgb.width * side), round(rgb.height * side)), Image.Resampling.BILINEAR)
        scale = (width or image.width) / rgb.width
        pixels = np.ascontiguousarray(np.asarray(rgb))
        return sorted(self._faces(pixels, scale), key=lambda f: -f.size)

    def _faces(self, pixels: np.ndarray, scale: float) -> list[Face]:
        m = self._models
        found, scores, _ = m.detect.run(pixels, UPSAMPLE, MIN_SCORE)
        faces = []
        for rect, score in zip(found, scores, strict=True):
            shape = m.align(pixels, rect)
            chip = m.chip(pixels, shape, size=CHIP_PX, padding=0.25)
            vector = np.asarray(m.describe.compute_face_descriptor(chip), np.float32)
            box = tuple(
                round(v * scale)
                for v in (
                    max(rect.left(), 0),
                    max(rect.top(), 0),
                    min(rect.right(), pixels.shape[1]),
                    min(rect.bottom(), pixels.shape[0]),
                )
            )
            faces.append(Face(box, float(score), vector, sharpness(chip)))
        return faces


def sharpness(chip: np.ndarray) -> float:
    """The variance of the 4-neighbour Laplacian of the face in grey: low for a blurred face."""
    grey = chip.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var())


def picture_side(reader: FaceReader | None) -> int:
    """The short side pictures are decoded at for finding their faces."""
    return 0 if reader is None else MAX_SIDE


def frame_side(reader: FaceReader | None) -> int:
    """The short side keyframes are decoded at for finding their faces (a 16:9 frame's long side is then
    about MAX_SIDE)."""
    return 0 if reader is None else MAX_SIDE * 9 // 16
