"""Deterministic synthetic captioned dataset: coloured shapes on varied backgrounds.

Every image shows one shape of one colour, e.g. "a red circle", at a random
position, scale and rotation on a plain, gradient, noisy or striped background
whose colour is desaturated so it never competes with the shape colour.

File names encode the class (``red-circle-0003.png``) so ground truth can be
recovered with :func:`class_of`.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 215, 20),
    "purple": (140, 40, 180),
    "orange": (255, 130, 0),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")

IMAGE_FORMATS: dict[str, str] = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}

_SUPERSAMPLE = 4
_COLOUR_JITTER = 12

Rng = random.Random | np.random.Generator


def caption(colour: str, shape: str) -> str:
    """Return the canonical caption for a class, e.g. ``"a red circle"``."""
    _check_class(colour, shape)
    return f"a {colour} {shape}"


def classes() -> list[tuple[str, str]]:
    """All (colour, shape) classes in a fixed order."""
    return [(c, s) for c in COLOURS for s in SHAPES]


def class_of(path: str | Path) -> tuple[str, str]:
    """Recover ``(colour, shape)`` from a generated file name like ``red-circle-0003.png``."""
    parts = Path(path).stem.split("-")
    if len(parts) != 3 or parts[0] not in COLOURS or parts[1] not in SHAPES:
        raise ValueError(f"not a synthetic image name: {Path(path).name!r}")
    return parts[0], parts[1]


def _check_class(colour: str, shape: str) -> None:
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; expected one of {sorted(COLOURS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {list(SHAPES)}")


def _as_generator(rng: Rng) -> np.random.Generator:
    """Use a numpy Generator as is; derive one from a ``random.Random``."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng.getrandbits(64))


def _muted_colour(gen: np.random.Generator, light: bool) -> np.ndarray:
    """A low-saturation colour, either light or dark, as float RGB in 0..255."""
    hue = gen.uniform(0.0, 1.0)
    sat = gen.uniform(0.0, 0.22)
    val = gen.uniform(0.78, 1.0) if light else gen.uniform(0.08, 0.35)
    rgb = np.array([hue, hue + 2 / 3, hue + 1 / 3]) % 1.0
    rgb = np.clip(np.abs(rgb * 6.0 - 3.0) - 1.0, 0.0, 1.0)  # hue -> pure RGB
    return 255.0 * val * (1.0 - sat + sat * rgb)


def _background(gen: np.random.Generator, size: int) -> np.ndarray:
    """A float HxWx3 background: plain, gradient, noise or soft stripes."""
    light = bool(gen.random() < 0.6)
    base = _muted_colour(gen, light)
    kind = int(gen.integers(0, 4))
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float64)
    if kind == 1:  # linear gradient towards another muted colour of the same lightness
        other = _muted_colour(gen, light)
        angle = gen.uniform(0.0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = (xx * math.cos(angle) + yy * math.sin(angle) + 1.0) / 2.0
        img = base + (other - base) * t[..., None]
    elif kind == 2:  # light pixel noise
        img = img + gen.normal(0.0, gen.uniform(4.0, 12.0), (size, size, 1))
    elif kind == 3:  # soft stripes
        period = gen.uniform(6.0, 20.0) * size / 128
        angle = gen.uniform(0.0, math.pi)
        yy, xx = np.mgrid[0:size, 0:size]
        wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
        img = img + (gen.uniform(6.0, 16.0) * wave)[..., None]
    return img


def _shape_points(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices of a shape of circumradius ``r`` centred at (cx, cy)."""
    if shape == "circle":
        polar = [(r, 2 * math.pi * k / 64) for k in range(64)]
    elif shape == "square":
        polar = [(r, math.pi / 4 + math.pi / 2 * k) for k in range(4)]
    elif shape == "triangle":
        polar = [(r, -math.pi / 2 + 2 * math.pi / 3 * k) for k in range(3)]
    elif shape == "star":
        polar = [(r if k % 2 == 0 else 0.42 * r, -math.pi / 2 + math.pi / 5 * k) for k in range(10)]
    elif shape == "cross":  # arms 0.66 r wide; the arm ends' corners lie on the circumcircle
        a, b = 0.33 * r, r / math.sqrt(1 + 0.33**2)
        arm = [(math.hypot(x, y), math.atan2(y, x)) for x, y in ((b, a), (a, a), (a, b))]
        polar = [(d, t + math.pi / 2 * k) for k in range(4) for d, t in arm]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return [(cx + d * math.cos(t + angle), cy + d * math.sin(t + angle)) for d, t in polar]


def render(colour: str, shape: str, rng: Rng, size: int = 128) -> Image.Image:
    """Render one RGB image of a ``colour`` ``shape`` using randomness from ``rng``."""
    _check_class(colour, shape)
    gen = _as_generator(rng)
    bg = _background(gen, size)
    big = size * _SUPERSAMPLE
    radius = gen.uniform(0.2, 0.38) * big
    cx, cy = (gen.uniform(radius, big - radius) for _ in range(2))
    angle = gen.uniform(0.0, 2 * math.pi)
    jitter = gen.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, 3)
    fill = np.clip(np.array(COLOURS[colour]) + jitter, 0, 255)
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).polygon(_shape_points(shape, cx, cy, radius, angle), fill=255)
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.float64)[..., None] / 255.0
    pixels = bg * (1.0 - alpha) + fill * alpha
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def generate(
    out_dir: Path, per_class: int, seed: int = 0, size: int = 128, fmt: str = "png"
) -> list[tuple[Path, str]]:
    """Write ``per_class`` images of every class plus ``captions.csv`` into ``out_dir``.

    Output depends only on (seed, class, index, size), so a given seed always
    yields the same images; use another seed for held-out data.
    Returns (image path, caption) pairs; the CSV holds paths relative to ``out_dir``.
    """
    fmt = fmt.lower()
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; expected one of {sorted(IMAGE_FORMATS)}")
    if per_class < 1:
        raise ValueError("per_class must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs: list[tuple[Path, str]] = []
    for ci, colour in enumerate(COLOURS):
        for si, shape in enumerate(SHAPES):
            for i in range(per_class):
                gen = np.random.default_rng([seed, ci, si, i])
                path = out_dir / f"{colour}-{shape}-{i:04d}.{fmt}"
                options = {"quality": 95} if IMAGE_FORMATS[fmt] == "JPEG" else {}
                render(colour, shape, gen, size).save(path, IMAGE_FORMATS[fmt], **options)
                pairs.append((path, caption(colour, shape)))
    with open(out_dir / "captions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "caption"])
        writer.writerows((p.name, c) for p, c in pairs)
    return pairs
