"""Explicit content, looked for at index time (`mmsearch index --safe-search`, safety.enabled; the `[faces]`
extra): NudeNet's 320n detector (MIT, an ONNX YOLOv8n inside the nudenet wheel, 25 ms a look on 2 cores)
over the whole picture at its 320 pixels, and a picture is flagged where it finds one of the classes
safety.classes names (by default the exposed genitalia, breasts, buttocks and anus) with at least
safety.min_score. The flag is the item's field `explicit` (true or false), so it filters and counts like
any field; search leaves flagged items out unless asked (Engine.search, `safe`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mmsearch.defaults import EXPLICIT
from mmsearch.errors import ConfigError

FIELD = "explicit"
CLASSES = (  # every class the detector knows: a setting naming another is refused
    *EXPLICIT,
    "FEMALE_GENITALIA_COVERED",
    "FEMALE_BREAST_COVERED",
    "MALE_BREAST_EXPOSED",
    "BUTTOCKS_COVERED",
    "ANUS_COVERED",
    "BELLY_EXPOSED",
    "BELLY_COVERED",
    "ARMPITS_EXPOSED",
    "ARMPITS_COVERED",
    "FEET_EXPOSED",
    "FEET_COVERED",
    "FACE_FEMALE",
    "FACE_MALE",
)


def missing() -> str | None:
    """Why the check cannot run here, or None."""
    if importlib.util.find_spec("nudenet") is None:
        return "safe search needs the detector: pip install 'mmsearch[faces]'"
    return None


class ExplicitCheck:
    """Flags pictures that show one of `classes`. ONNX Runtime sessions may run concurrently: the decode
    threads share one."""

    def __init__(self, classes: Sequence[str] = EXPLICIT, min_score: float = 0.5):
        if why := missing():
            raise ConfigError(why)
        unknown = sorted(set(classes) - set(CLASSES))
        if unknown or not classes:
            raise ConfigError(f"safety.classes: unknown {unknown}; the detector knows {', '.join(CLASSES)}")
        from nudenet import NudeDetector

        self._detector = NudeDetector()
        self.classes, self.min_score = frozenset(classes), min_score

    def fields(self, pictures: Sequence[Image.Image]) -> dict[str, bool]:
        """The item's field: whether any of its pictures (an image, a video's keyframes) shows a class."""
        return {FIELD: any(self.flagged(p) for p in pictures)}

    def flagged(self, picture: Image.Image) -> bool:
        pixels = np.ascontiguousarray(np.asarray(picture.convert("RGBA")))
        return any(
            d["class"] in self.classes and d["score"] >= self.min_score for d in self._detector.detect(pixels)
        )
