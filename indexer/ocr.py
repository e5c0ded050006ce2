"""Text written in pictures, read at index time with RapidOCR (PP-OCRv4 detection and recognition as ONNX,
carried in the `rapidocr-onnxruntime` wheel: the `[ocr]` extra).

Detection finds the text lines first and only those regions are recognised, on a picture whose longer
side is at most `max_side`. A line is kept when the recogniser is at least `min_score` sure of it and it
holds at least two letters or digits: on the real photo set the lines under 0.8 or of one character were
noise ("S0", "L", "8" read from textures). PP-OCRv4's shipped models read Chinese and English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.config import OcrSettings
from mmsearch.errors import ConfigError, ModelUnavailableError

ALNUM = re.compile(r"\w", re.UNICODE)
TOKEN = re.compile(r"[^\W_]+")
AS_LETTER = str.maketrans("0158", "OISB")  # what a recogniser reads for a letter in a word: C0FFEE, EX1T
AS_DIGIT = str.maketrans("OoIlSB", "011158")  # and for a digit in a number: 2O23
LOOK_ALIKES = frozenset("0158OoIlSB")


@dataclass(frozen=True)
class Line:
    """One line of text read, its box in the picture's own pixels (x0, y0, x1, y1) and how sure it is."""

    text: str
    box: tuple[int, int, int, int]
    score: float

    def stored(self) -> list:
        return [*self.box, self.text, round(self.score, 3)]


def missing() -> str | None:
    """Why OCR cannot run here, or None."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return "rapidocr-onnxruntime is not installed: pip install 'mmsearch[ocr]'"
    return None


class TextReader:
    """Reads the lines of text in a picture; one per index run, shared by the decode threads (ONNX
    Runtime sessions may run concurrently)."""

    def __init__(self, settings: OcrSettings):
        if (why := missing()) is not None:
            raise ModelUnavailableError(f"cannot read text in pictures: {why}")
        from rapidocr_onnxruntime import RapidOCR

        self.settings = settings
        other = {"rec_model_path": settings.rec_model, "rec_keys_path": settings.rec_keys}
        for key, path in other.items():
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"ocr.{key.removesuffix('_path')}: no file at {path}")
        # RapidOCR's "max" limit scales every picture to 960-2000 pixels, small ones up (0.25 s a photo
        # on 2 cores); pictures are scaled down to max_side here instead, and "min" 32 keeps their size.
        self._engine = RapidOCR(
            det_limit_type="min",
            det_limit_side_len=32,
            use_cls=settings.rotated,
            **{k: v for k, v in other.items() if v is not None},
        )

    def read(self, image: Image.Image, width: int, height: int) -> list[Line]:
        """The lines in `image` (RGB), boxes scaled to a picture of `width` x `height` (the file's own
        size, where `image` was decoded smaller), top to bottom."""
        image = image.convert("RGB")
        side = self.settings.max_side
        if max(image.size) > side:
            image = image.copy()
            image.thumbnail((side, side))
        elif self.settings.upscale and max(image.size) < side:
            scale = side / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        found, _ = self._engine(bgr)
        sx, sy = width / image.width, height / image.height
        lines = []
        for points, text, score in found or []:
            text = " ".join(str(text).split())
            if float(score) < self.settings.min_score or len(ALNUM.findall(text)) < 2:
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            box = (round(min(xs) * sx), round(min(ys) * sy), round(max(xs) * sx), round(max(ys) * sy))
            lines.append(Line(text, box, float(score)))
        return sorted(lines, key=lambda line: (line.box[1], line.box[0]))


def repaired(text: str) -> str:
    """`text` with the look-alikes a recogniser confuses put back where the rest of the word says which
    was meant: in a word of at least two other letters and no other digit, a 0, 1, 5 or 8 is a letter
    (C0FFEE, EX1T, M0DEL); in a number of at least two other digits and no other letter, an O, I, l, S or
    B is a digit (2O23). Anything less sure stays as read (A1, 1O, COVID19, H2O)."""
    return TOKEN.sub(lambda m: _repair_word(m.group()), text)


def _repair_word(word: str) -> str:
    sure = [c for c in word if c not in LOOK_ALIKES]
    letters, digits = sum(c.isalpha() for c in sure), sum(c.isdigit() for c in sure)
    if letters >= 2 and not digits:
        fixed = word.translate(AS_LETTER)
        return fixed.lower() if all(c.islower() for c in sure if c.isalpha()) else fixed
    if digits >= 2 and not letters:
        return word.translate(AS_DIGIT)
    return word


def key(text: str) -> str:
    """What a reading says, for telling two readings of the same text apart from different text: its
    letters and digits repaired, lower case, spaces dropped (one frame reads PLATFORM NINE, the next
    PLATFORMNINE)."""
    return "".join(TOKEN.findall(repaired(text))).lower()


def blocks(lines: list[Line]) -> list[list[Line]]:
    """Lines grouped as a reader groups them: a line joins a block when it is about as tall as the block's
    last line, starts below it within a line's height and overlaps it sideways (a sign's heading, its
    message and its small print are three blocks, each searched on its own)."""
    found: list[list[Line]] = []
    for line in sorted(lines, key=lambda x: (x.box[1], x.box[0])):
        for block in found:
            last = block[-1]
            tall, height = last.box[3] - last.box[1], line.box[3] - line.box[1]
            if (
                0.7 <= height / max(tall, 1) <= 1.4
                and last.box[1] < line.box[1] <= last.box[3] + tall
                and min(last.box[2], line.box[2]) > max(last.box[0], line.box[0])
            ):
                block.append(line)
                break
        else:
            found.append([line])
    return found


@lru_cache(maxsize=2)
def reader(settings: OcrSettings) -> TextReader:
    """One reader per settings in a process: loading the models takes about a second."""
    return TextReader(settings)
