"""Keyframe choice: a content detector on tiny frames, with a floor and a ceiling.

The detector follows PySceneDetect's ContentDetector: the mean absolute change of hue, saturation and
value between consecutive frames (0-255 each), a cut at 27 or more, a minimum scene length. Instead of
converting whole frames it subsamples the decoder's own Y/U/V planes to ~64 pixels wide and converts
only those: microseconds per frame, so every frame is compared and cuts land on the exact frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PLANAR_8BIT = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"})
PROBE_WIDTH = 64
DIM = 64.0  # mean HSV value (0-255) under which a keyframe is swapped for a brighter frame of its scene


@dataclass
class Keyframe:
    t: float  # seconds from the start of the video
    strength: float  # the cut's colour change; 0 for a keyframe taken by the floor
    image: np.ndarray  # RGB uint8
    value: float = 255.0  # the image's mean HSV value: under DIM, a brighter frame of the scene replaces it


def brightness(sig: np.ndarray) -> float:
    """A frame's mean HSV value (0-255) from its signature."""
    return float(sig[..., 2].mean())


def signature(frame) -> np.ndarray:
    """The frame's hue, saturation and value, (h, w, 3) float32, about 64 pixels wide."""
    if frame.format.name not in PLANAR_8BIT:
        height = max(1, round(frame.height * PROBE_WIDTH / max(1, frame.width)))
        frame = frame.reformat(width=PROBE_WIDTH, height=height, format="yuv444p")
    planes = []
    for plane in frame.planes[:3]:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        planes.append(rows[:: max(1, plane.width // PROBE_WIDTH), :: max(1, plane.width // PROBE_WIDTH)])
    h, w = min(p.shape[0] for p in planes), min(p.shape[1] for p in planes)
    y, u, v = (p[:h, :w].astype(np.float32) for p in planes)
    u, v = u - 128.0, v - 128.0
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], axis=-1)
    hsv = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").convert("HSV")
    return np.asarray(hsv, np.float32)


class SceneDetector:
    """Feed frames in order; `keyframes()` gives the chosen ones, first frame included."""

    def __init__(self, threshold: float, min_scene_s: float, max_gap_s: float, max_keyframes: int):
        self.threshold, self.min_scene_s, self.max_gap_s = threshold, min_scene_s, max_gap_s
        self.max_keyframes = max_keyframes
        self._prev: np.ndarray | None = None
        self._last_cut = -np.inf
        self._last_key = -np.inf
        self._keys: list[Keyframe] = []

    def wants(self, t: float, sig: np.ndarray) -> float | None:
        """The strength with which the frame at t starts a new keyframe, or None to skip it."""
        prev, self._prev = self._prev, sig
        if prev is None:
            strength = float("inf")
        elif prev.shape != sig.shape:  # resolution change mid-stream: a cut by definition
            strength = 255.0
        else:
            strength = float(np.abs(sig - prev).mean())
        if strength >= self.threshold and t - self._last_cut >= self.min_scene_s:
            self._last_cut = t
            return strength
        if t - self._last_key >= self.max_gap_s:
            return 0.0
        return None

    def add(self, t: float, strength: float, image: np.ndarray, value: float = 255.0) -> None:
        self._keys.append(Keyframe(t, strength, image, value))
        self._last_key = t
        if len(self._keys) >= 4 * self.max_keyframes:  # bound memory on very long videos
            self._keys = self._strongest(self._keys)

    def brighter(self, sig: np.ndarray) -> float | None:
        """The brightness of a frame that should stand in for the scene's keyframe, which is dim (a
        fade-in's first keyframe was black); None when it should not. Measured only while the keyframe is
        dim, so most frames cost nothing here. The keyframe keeps the cut's time."""
        if not self._keys or self._keys[-1].value >= DIM:
            return None
        value = brightness(sig)
        return value if value > self._keys[-1].value + 1.0 else None

    def use(self, image: np.ndarray, value: float) -> None:
        """A brighter frame's image for the latest keyframe."""
        self._keys[-1].image, self._keys[-1].value = image, value

    def keyframes(self) -> list[Keyframe]:
        return self._strongest(self._keys)

    def _strongest(self, keys: list[Keyframe]) -> list[Keyframe]:
        """The first frame, then the strongest cuts (floor keyframes last, earliest first), in time order."""
        if len(keys) <= self.max_keyframes:
            return keys
        rest = sorted(keys[1:], key=lambda k: (-k.strength, k.t))[: self.max_keyframes - 1]
        return [keys[0], *sorted(rest, key=lambda k: k.t)]
