"""Zero-shot image classification: image vectors against label prompts, as in the CLIP paper.

Each label becomes one class vector, the normalised mean of its prompts' text embeddings (prompt
ensembling: averaging several phrasings cancels part of each one's quirks). The classifier takes image
vectors, not images, so an upload (encode it first) and an indexed item (its stored image vector) are
classified alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.errors import InvalidQueryError
from mmsearch.storage.catalog import Catalog

if TYPE_CHECKING:
    from mmsearch.encode.base import EncoderBase

# A few of the CLIP paper's ImageNet prompts. They suit models trained on web captions; a model trained
# on narrow captions (like the synthetic shapes model) wants templates shaped like its own captions.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a close-up photo of the {}.",
    "a good photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
)

# open_clip's training loop clamps the learned temperature here; a larger one would only sharpen softmax.
MAX_LOGIT_SCALE = 100.0


class ZeroShotClassifier:
    """Scores unit image vectors against a fixed label set, single-label (softmax) or multi-label."""

    def __init__(self, encoder: EncoderBase, labels: Sequence[str], templates: Sequence[str] | None = None):
        self.labels = _check_labels(labels)
        self.templates = _check_templates(DEFAULT_TEMPLATES if templates is None else templates)
        prompts = [t.replace("{}", label) for label in self.labels for t in self.templates]
        per_prompt = encoder.encode_texts(prompts).reshape(len(self.labels), len(self.templates), -1)
        means = per_prompt.mean(axis=1)
        self.class_vectors = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        # The temperature the model was trained with, so softmax sharpness matches its contrastive loss.
        self.logit_scale = min(encoder.logit_scale, MAX_LOGIT_SCALE)

    def scores(self, image_vectors: np.ndarray) -> np.ndarray:
        """(n, labels) cosines; they do not compete across labels, which is what multi-label needs."""
        vectors = np.asarray(image_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.class_vectors.shape[1]:
            raise InvalidQueryError(
                f"image vectors of shape {vectors.shape}; expected (n, {self.class_vectors.shape[1]})"
            )
        return vectors @ self.class_vectors.T

    def probabilities(self, image_vectors: np.ndarray) -> np.ndarray:
        """(n, labels) softmax of logit_scale * cosine: each row sums to 1 (exactly one label applies)."""
        logits = self.logit_scale * self.scores(image_vectors)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def classify(self, image_vectors: np.ndarray, top: int = 1) -> list[list[tuple[str, float]]]:
        """Per image, the `top` most probable labels as (label, probability), most probable first."""
        if top < 1:
            raise InvalidQueryError(f"top must be at least 1, not {top}")
        probs = self.probabilities(image_vectors)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
        return [[(self.labels[j], float(row[j])) for j in idx] for row, idx in zip(probs, order, strict=True)]

    def multi_label(
        self, image_vectors: np.ndarray, thresholds: float | Sequence[float] | Mapping[str, float]
    ) -> list[list[tuple[str, float]]]:
        """Per image, every label whose cosine reaches its threshold, as (label, cosine), best first.

        Labels are judged independently (no softmax), so an image can get none, one or many. Cosines of
        one model sit in a narrow, model-specific band, so thresholds are best set per label from
        examples. `thresholds` is one value for all labels, one per label in order, or a label -> value
        mapping naming every label.
        """
        cut = self._thresholds(thresholds)
        out = []
        for row in self.scores(image_vectors):
            kept = [(self.labels[j], float(row[j])) for j in np.flatnonzero(row >= cut)]
            out.append(sorted(kept, key=lambda pair: -pair[1]))
        return out

    def _thresholds(self, thresholds: float | Sequence[float] | Mapping[str, float]) -> np.ndarray:
        if isinstance(thresholds, Mapping):
            unknown = set(thresholds) - set(self.labels)
            missing = [label for label in self.labels if label not in thresholds]
            if unknown or missing:
                raise InvalidQueryError(
                    f"thresholds must name every label exactly: unknown {sorted(unknown)}, missing {missing}"
                )
            return np.array([thresholds[label] for label in self.labels], dtype=np.float32)
        if isinstance(thresholds, int | float):
            return np.full(len(self.labels), thresholds, dtype=np.float32)
        if len(thresholds) != len(self.labels):
            raise InvalidQueryError(f"{len(thresholds)} thresholds for {len(self.labels)} labels")
        return np.asarray(thresholds, dtype=np.float32)


def _check_labels(labels: Sequence[str]) -> list[str]:
    """Stripped labels; blanks and duplicates would give empty prompts or ambiguous answers."""
    if isinstance(labels, str):
        raise InvalidQueryError("labels must be a list of strings, not one string")
    stripped = [label.strip() if isinstance(label, str) else label for label in labels]
    if not stripped:
        raise InvalidQueryError("no labels to classify into")
    for label in stripped:
        if not isinstance(label, str) or not label:
            raise InvalidQueryError(f"every label must be non-blank text, not {label!r}")
    duplicates = sorted(label for label, n in Counter(stripped).items() if n > 1)
    if duplicates:
        raise InvalidQueryError(f"labels repeat: {duplicates}")
    return stripped


def _check_templates(templates: Sequence[str]) -> list[str]:
    if isinstance(templates, str):
        raise InvalidQueryError("templates must be a list of strings, not one string")
    if not templates:
        raise InvalidQueryError("no prompt templates")
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise InvalidQueryError(f"prompt template {template!r} has no {{}} for the label")
    return list(templates)


def tag_collection(
    catalog: Catalog,
    classifier: ZeroShotClassifier,
    threshold: float | None = None,
    source: str = "zero-shot",
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, Counter]:
    """Tag every indexed item that has pictures (its mean picture vector): the most probable label, or
    with `threshold` every label whose cosine reaches it. Re-running replaces the tags `source` gave.
    Returns (items tagged, how often each label was given)."""
    done, given = 0, Counter()
    for item_ids, vectors in catalog.picture_vectors():
        if threshold is None:
            results = classifier.classify(vectors, top=1)
        else:
            results = classifier.multi_label(vectors, threshold)
        catalog.set_tags(dict(zip(item_ids.tolist(), results, strict=True)), source)
        given.update(label for labels in results for label, _ in labels)
        done += len(item_ids)
        if on_progress:
            on_progress(done)
    return done, given
