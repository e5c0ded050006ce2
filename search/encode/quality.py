"""How good a look a picture gives, measured at index time for the best shot of a stack
(search/storage/stacks.py) and kept in the item's meta as `look`.

- sharpness: the variance of the Laplacian of the picture in grey at SIDE pixels on its longer side
  (Pech-Pacheco et al., 2000; the focus measure faces.py uses), over its squared mean grey level: a
  blurred or shaken frame loses its fine edges and the figure falls by an order of magnitude, while a
  brighter frame of the same focus keeps it (the Laplacian grows with the brightness: a raw variance
  called every over-exposed frame of a burst the sharpest). At one size, so frames compare whatever
  their resolution.
- exposure: the mean well-exposedness of its pixels, exp(-(v - 0.5)^2 / (2 * 0.2^2)) for a grey value v in
  0..1 (Mertens, Kautz and Van Reeth, "Exposure fusion", 2007): 1 where everything is mid-grey, lower as
  pixels crowd into the shadows or the highlights.
- clipped: the share of pixels blown out or crushed (grey 250 and over, 5 and under): detail lost for good.
- phash: the perceptual hash of the picture (imagehash's pHash: the signs of its lowest 8 x 8 DCT
  frequencies against their median), 16 hex digits: two shots of one scene differ in few of its 64 bits
  whatever their focus, framing or exposure, and whatever the model makes of them.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

SIDE = 512
SIGMA = 0.2  # Mertens et al.'s
BLOWN, CRUSHED = 250, 5


def look(image: Image.Image) -> dict[str, float]:
    """The picture's sharpness, exposure, clipped share and perceptual hash."""
    grey = image.convert("L")
    grey.thumbnail((SIDE, SIDE), Image.Resampling.BILINEAR)
    v = np.asarray(grey, np.float32)
    return {
        "sharpness": round(sharpness(v), 6),
        "exposure": round(exposure(v / 255.0), 4),
        "clipped": round(float(((v >= BLOWN) | (v <= CRUSHED)).mean()), 4),
        "phash": str(imagehash.phash(grey)),
    }


def sharpness(grey: np.ndarray) -> float:
    """The variance of the 4-neighbour Laplacian of a grey picture (0..255) over its squared mean."""
    if min(grey.shape) < 3:
        return 0.0
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var() / (grey.mean() ** 2 + 1.0))


def exposure(grey: np.ndarray) -> float:
    """The mean well-exposedness of a grey picture's pixels (0..1)."""
    return float(np.exp(-((grey - 0.5) ** 2) / (2 * SIGMA**2)).mean())
