"""Keyframe choice: a content detector on tiny frames, with a floor and a ceiling.

The detector follows PySceneDetect's ContentDetector (mean absolute change of the colour channels
between consecutive frames, threshold 27 on a 0-255 scale, a minimum scene length), but reads the
decoder's own Y/U/V planes subsampled to ~64 pixels wide instead of converting each frame: that costs
microseconds per frame, so every frame can be compared and cuts land on the exact frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLANAR_8BIT = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"})
PROBE_WIDTH = 64


@dataclass
class Keyframe:
    t: float  # seconds from the start of the video
    strength: float  # the cut's colour change; 0 for a keyframe taken by the floor
    image: np.ndarray  # RGB uint8


def signature(frame) -> np.ndarray:
    """A small float32 stack of the frame's Y, U, V channels (about 64 pixels wide)."""
    if frame.format.name in PLANAR_8BIT:
        planes = []
        for plane in frame.planes[:3]:
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            step = max(1, plane.width // PROBE_WIDTH)
            planes.append(rows[::step, ::step])
        h = min(p.shape[0] for p in planes)
        w = min(p.shape[1] for p in planes)
        return np.stack([p[:h, :w] for p in planes]).astype(np.float32)
    height = max(1, round(frame.height * PROBE_WIDTH / max(1, frame.width)))
    return signature(frame.reformat(width=PROBE_WIDTH, height=height, format="yuv444p"))


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

    def add(self, t: float, strength: float, image: np.ndarray) -> None:
        self._keys.append(Keyframe(t, strength, image))
        self._last_key = t
        if len(self._keys) >= 4 * self.max_keyframes:  # bound memory on very long videos
            self._keys = self._strongest(self._keys)

    def keyframes(self) -> list[Keyframe]:
        return self._strongest(self._keys)

    def _strongest(self, keys: list[Keyframe]) -> list[Keyframe]:
        """The first frame, then the strongest cuts (floor keyframes last, earliest first), in time order."""
        if len(keys) <= self.max_keyframes:
            return keys
        rest = sorted(keys[1:], key=lambda k: (-k.strength, k.t))[: self.max_keyframes - 1]
        return [keys[0], *sorted(rest, key=lambda k: k.t)]
