"""Faces blurred in the thumbnails the API serves (`api.blur_faces`, off by default; the `[faces]` extra),
and pictures safe search flagged blurred whole (`veiled`).

The detector is NudeNet's 320n (MIT, an ONNX YOLOv8n inside the nudenet wheel): 25 ms a look on 2 cores.
It sees a picture at 320 pixels, where a face in a crowd is a few pixels wide, so it looks at the whole
picture and at five half-size tiles (the corners and the centre), each at its full 320: Messi's face in
opencv's messi5.jpg is found in a tile and missed whole. A face is kept from a score of 0.25; a dog's face
may be taken for one, which costs a blurred dog, the right way to be wrong here.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mmsearch.errors import ConfigError

MIN_SCORE = 0.25
LOOK_PX = 640  # pictures are looked at at most this large: a tile is then the detector's own 320
FACES = ("FACE_FEMALE", "FACE_MALE")
GROW = 0.25  # each side of a face's box, in box widths: hair, ears and chin go too

Box = tuple[int, int, int, int]


def veiled(image: Image.Image) -> Image.Image:
    """A picture safe search flagged (search/encode/safety.py), blurred past telling what it shows."""
    return image.convert("RGB").filter(ImageFilter.GaussianBlur(max(8, max(image.size) // 10)))


def decode_side(size: int, faces: FaceBlur | None) -> int:
    """The side to decode a picture at for a thumbnail of `size`: faces are looked for at LOOK_PX."""
    return size if faces is None else max(size, LOOK_PX)


def shrunk(image: Image.Image, size: int, faces: FaceBlur | None) -> Image.Image:
    """`image` as a thumbnail of at most `size` a side, its faces blurred where `faces` is given."""
    if faces is None:
        image.thumbnail((size, size))
        return image
    return faces.thumbnail(image, size)


class FaceBlur:
    """Finds faces in a picture and blurs them past recognition. One per app; ONNX Runtime sessions may
    run concurrently, so the thumbnail threads share it."""

    def __init__(self) -> None:
        if importlib.util.find_spec("nudenet") is None:
            raise ConfigError("api.blur_faces needs the face detector: pip install 'mmsearch[faces]'")
        from nudenet import NudeDetector

        self._detector = NudeDetector()

    def faces(self, image: Image.Image) -> list[Box]:
        """Boxes (x0, y0, x1, y1) of the faces in `image`, in its pixels."""
        scale = min(1.0, LOOK_PX / max(image.size))
        small = image.convert("RGB")
        if scale < 1.0:
            small = small.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        w, h = small.size
        tiles = [(0, 0, w, h)] + [
            (x, y, x + w // 2, y + h // 2) for x, y in ((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2))
        ]
        tiles.append((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
        found = []
        for x0, y0, x1, y1 in tiles:
            pixels = np.ascontiguousarray(np.asarray(small.crop((x0, y0, x1, y1)).convert("RGBA")))
            for d in self._detector.detect(pixels):
                if d["class"] in FACES and d["score"] >= MIN_SCORE:
                    bx, by, bw, bh = d["box"]
                    box = (x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh)
                    found.append(tuple(round(v / scale) for v in box))
        return found

    def thumbnail(self, image: Image.Image, size: int) -> Image.Image:
        """`image` shrunk to at most `size` a side, every face found in it (looked for before shrinking)
        blurred within an ellipse a little larger than the face."""
        boxes = self.faces(image)
        scale = min(1.0, size / max(image.size))
        image.thumbnail((size, size))
        if not boxes:
            return image
        out = image.convert("RGB")
        for x0, y0, x1, y1 in boxes:
            grow = GROW * max(x1 - x0, y1 - y0)
            grown = (x0 - grow, y0 - grow, x1 + grow, y1 + grow)
            ends = out.size * 2
            box = tuple(round(min(max(v * scale, 0), end)) for v, end in zip(grown, ends, strict=True))
            region = out.crop(box)
            if min(region.size) < 2:
                continue
            mask = Image.new("L", region.size, 0)
            ImageDraw.Draw(mask).ellipse((0, 0, region.width - 1, region.height - 1), fill=255)
            out.paste(region.filter(ImageFilter.GaussianBlur(max(4, max(region.size) // 5))), box[:2], mask)
        return out
