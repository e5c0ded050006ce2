"""What every encoder does alike (`EncoderBase`): batching, timing hooks, unit vectors, token counts and
text splits around a subclass's own image and text chunks. The torch Encoder (models.py) and the
torch-free OnnxEncoder (onnx_encoder.py) both build on it; callers that only encode type against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from mmsearch.encode import query_tower
from mmsearch.encode.sentences import CLIP, SentenceEncoder
from mmsearch.encode.word_tower import OnnxSentences

AUTO_MIN_PARAMS = 20_000_000  # `auto` keeps smaller models (tests, the shapes demo) on float32 torch
ONNX_BACKENDS = ("onnx", "onnx-int8")


class EncoderBase:
    """Batching, metrics hook and unit vectors around a subclass's `_image_chunk` / `_text_chunk`."""

    dim: int
    batch_size: int
    query_tower: query_tower.QueryTower | None
    on_batch: Callable[[str, float], None] | None  # (kind, seconds) per batch: metrics
    # One picture as the image tower reads it, (3, H, W) float32: a picklable function, not a method,
    # so that Ray can ship it to decode tasks without the encoder.
    preprocess: Callable[[Image.Image], np.ndarray]
    context_length = 77  # tokens the text tower reads, start and end markers included
    fingerprint: str
    # The text model (encode/sentences.py, on torch or its ONNX graph); None: this text tower.
    words: SentenceEncoder | OnnxSentences | None = None

    def _image_chunk(self, pixels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _text_chunk(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def token_count(self, text: str) -> int:
        """Tokens the text tower reads for `text`, start and end markers not counted."""
        raise NotImplementedError

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Encode a batch of already preprocessed images (n, 3, H, W)."""
        chunks = [pixels[i : i + self.batch_size] for i in range(0, len(pixels), self.batch_size)]
        return self._joined([self._timed("image", self._image_chunk, chunk) for chunk in chunks])

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        chunks = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return self._joined([self._timed("text", self._text_chunk, chunk) for chunk in chunks])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Search queries: the int8 query tower when there is one (search/encode/query_tower.py), else the
        main backend. What is indexed (transcripts, fields) always goes through encode_texts."""
        if self.query_tower is None:
            return self.encode_texts(texts)
        chunks = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return self._joined([self._timed("text", self.query_tower.encode_texts, chunk) for chunk in chunks])

    def encode_lone_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Each text exactly as a query of its own is encoded (the int8 tower's vectors depend on the
        batch), so the one-shot search and the engine score alike."""
        if self.query_tower is None:
            return self.encode_texts(texts)
        return query_tower.unit(self.query_tower.encode_each(list(texts)))

    def encode_words(self, texts: Sequence[str]) -> np.ndarray:
        """What is said or written, indexed or searched for: the text model's vectors when there is one."""
        if self.words is None:
            return self.encode_texts(texts)
        return self._timed("words", self.words.encode, texts)

    def encode_word_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Search queries in the word space (a text model may read queries unlike passages: E5)."""
        if self.words is None:
            return self.encode_queries(texts)
        return self._timed("words", self.words.encode_queries, texts)

    def encode_word_cohort(self, texts: Sequence[str]) -> np.ndarray:
        """The word space's query cohort (search/query/fusion.py): on the text model's ONNX graph, the
        vectors kept beside it, which the one-shot search reads too."""
        if self.words is None:
            return self.encode_queries(texts)
        return self.words.encode_kept(list(texts))

    @property
    def words_dim(self) -> int:
        return self.dim if self.words is None else self.words.dim

    def text_model_record(self) -> dict:
        """What an index records about the model of its word space."""
        if self.words is None:
            return {"name": CLIP, "dim": self.dim, "fingerprint": self.fingerprint}
        return self.words.record()

    def _timed(self, kind: str, encode: Callable, chunk) -> np.ndarray:
        started = time.perf_counter()
        out = encode(chunk)
        if self.on_batch is not None:
            self.on_batch(kind, time.perf_counter() - started)
        return out

    def _joined(self, chunks: list[np.ndarray]) -> np.ndarray:
        return query_tower.unit(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), np.float32)

    def split_text(self, text: str) -> list[str]:
        """Runs of whole words that each fit the text tower's context; the tower cuts longer texts off."""
        limit = max(1, self.context_length - 2)
        pieces: list[str] = []
        current: list[str] = []
        for word in text.split():
            if current and self.token_count(" ".join([*current, word])) > limit:
                pieces.append(" ".join(current))
                current = []
            current.append(word)
        if current:
            pieces.append(" ".join(current))
        return pieces
