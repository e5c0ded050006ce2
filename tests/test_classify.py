"""Zero-shot classification with the trained shapes model on held-out images (another seed).

The model only ever read captions "a {colour} {shape}", so a label alone ("red", "circle") is
out of distribution and the template decides a lot. The templates here name neither a colour nor a
shape of their own (no "a {} circle"): each fills in the label and nothing that gives the answer away.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch.encode.models import Encoder
from mmsearch.encode.spec import ModelSpec
from mmsearch.errors import InvalidQueryError
from mmsearch.learn.classify import DEFAULT_TEMPLATES, ZeroShotClassifier
from mmsearch.synth.shapes import COLOURS, SHAPES, class_of, generate

HELD_OUT_PER_CLASS = 6

# The committed fixture (tests/fixtures/models/shapes) scores colours 1.0 and shapes 0.944 (170 of 180) on
# this set with these templates, the same under every CPU setting measured; fresh trainings of its recipe
# score shapes 0.867 to 0.944 over five seeds (docs/testing.md), so 0.9 holds for the fixture with 8
# pictures to spare, not for any training. The shape templates copy the captions' "a <adjective> <shape>"
# form with adjectives no caption used, so they stand for no colour; without an adjective ("a {}") shapes
# dropped to 0.40 on an earlier training.
COLOUR_TEMPLATES = ("{}", "a {}", "the {}")
SHAPE_TEMPLATES = ("a coloured {}", "a colored {}", "a bright {}", "a plain {}", "a solid {}")


@pytest.fixture(scope="module")
def held_out(shapes_model: Path, tmp_path_factory) -> tuple[Encoder, np.ndarray, list[tuple[str, str]]]:
    """The shapes encoder, unit vectors of unseen images, and each image's (colour, shape)."""
    encoder = Encoder(ModelSpec(str(shapes_model)).normalised(), "cpu")
    pairs = generate(tmp_path_factory.mktemp("classify"), per_class=HELD_OUT_PER_CLASS, seed=1)
    images = []
    for path, _ in pairs:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return encoder, encoder.encode_images(images), [class_of(path) for path, _ in pairs]


def accuracy(held_out, labels: Sequence[str], templates: Sequence[str], part: int) -> float:
    """Top-1 accuracy of the zero-shot classifier; `part` 0 grades the colour, 1 the shape."""
    encoder, vectors, truth = held_out
    predicted = ZeroShotClassifier(encoder, labels, templates).classify(vectors)
    return float(np.mean([top[0][0] == cls[part] for top, cls in zip(predicted, truth, strict=True)]))


def test_colours(held_out, record_property):
    acc = accuracy(held_out, list(COLOURS), COLOUR_TEMPLATES, 0)
    record_property("zero_shot_colours", acc)
    assert acc >= 0.9, f"colour accuracy {acc:.3f}"


def test_shapes(held_out, record_property):
    acc = accuracy(held_out, list(SHAPES), SHAPE_TEMPLATES, 1)
    record_property("zero_shot_shapes", acc)
    assert acc >= 0.9, f"shape accuracy {acc:.3f}"


@pytest.mark.parametrize(
    ("labels", "templates", "part"),
    [(list(COLOURS), COLOUR_TEMPLATES, 0), (list(SHAPES), SHAPE_TEMPLATES, 1)],
    ids=["colours", "shapes"],
)
def test_ensemble_no_worse_than_a_template_picked_blind(held_out, labels, templates, part):
    """An ensemble is not always better than its best template (a model trained with one thread instead
    of two scored 0.928 with "a coloured {}" alone, 0.911 with the five shape templates), and finding
    the best one takes labelled data. What ensembling does promise without such data is to do at least
    as well as a template picked blind: the mean accuracy of its members. The bare label, the
    no-template baseline, is the second comparison. CLIP's own comparison, its ensemble against "a photo
    of a {}.", is not asserted: on this model both are near chance for shapes and the order flipped
    between two trainings.
    """
    ensemble = accuracy(held_out, labels, templates, part)
    singles = [accuracy(held_out, labels, [t], part) for t in templates]
    assert ensemble >= np.mean(singles), f"ensemble {ensemble:.3f}, templates {singles}"
    bare = accuracy(held_out, labels, ["{}"], part)
    assert ensemble >= bare, f"ensemble {ensemble:.3f}, bare label {bare:.3f}"


def test_default_templates(held_out):
    """CLIP's prompts ("a photo of a {}.") are out of distribution for this model: they are the default,
    not what these tests grade (measured: colours 0.83, shapes 0.30 to 0.45 depending on the training).
    """
    classifier = ZeroShotClassifier(held_out[0], list(COLOURS))
    assert classifier.templates == list(DEFAULT_TEMPLATES)
    assert classifier.class_vectors.shape == (len(COLOURS), held_out[0].dim)


def test_probabilities_and_scores(held_out):
    encoder, vectors, _ = held_out
    classifier = ZeroShotClassifier(encoder, list(COLOURS), COLOUR_TEMPLATES)
    probs = classifier.probabilities(vectors)
    assert probs.shape == (len(vectors), len(COLOURS))
    assert np.all(probs >= 0) and np.all(probs <= 1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    cosines = classifier.scores(vectors)
    assert np.all(np.abs(cosines) <= 1 + 1e-5)
    assert np.array_equal(probs.argmax(axis=1), cosines.argmax(axis=1))
    assert 0 < classifier.logit_scale <= 100
    top3 = classifier.classify(vectors[:2], top=3)
    assert [len(row) for row in top3] == [3, 3]
    assert all([p for _, p in row] == sorted((p for _, p in row), reverse=True) for row in top3)


def test_multi_label_thresholds(held_out):
    encoder, vectors, _ = held_out
    classifier = ZeroShotClassifier(encoder, list(COLOURS), COLOUR_TEMPLATES)
    cosines = classifier.scores(vectors)
    low, high = float(np.quantile(cosines, 0.25)), float(np.quantile(cosines, 0.9))
    loose, strict = classifier.multi_label(vectors, low), classifier.multi_label(vectors, high)
    assert sum(map(len, strict)) < sum(map(len, loose))
    for row, got in zip(cosines, strict, strict=True):
        assert {label for label, _ in got} == {c for c, s in zip(COLOURS, row, strict=True) if s >= high}
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    per_label = dict.fromkeys(COLOURS, high) | {"red": low}
    by_name = classifier.multi_label(vectors, per_label)
    assert by_name == classifier.multi_label(vectors, list(per_label.values()))
    assert sum(map(len, strict)) < sum(map(len, by_name))
    with pytest.raises(InvalidQueryError):
        classifier.multi_label(vectors, {"red": 0.5})
    with pytest.raises(InvalidQueryError):
        classifier.multi_label(vectors, [0.5, 0.5])


@pytest.mark.parametrize(
    ("labels", "templates"),
    [
        ([], None),
        (["red", "red"], None),
        (["red", " red "], None),
        (["red", "  "], None),
        ("red", None),
        (["red", "blue"], ["a photo of a thing"]),
        (["red", "blue"], []),
    ],
    ids=["no labels", "duplicate", "duplicate after strip", "blank", "one string", "no {}", "no templates"],
)
def test_invalid_labels_and_templates(held_out, labels, templates):
    with pytest.raises(InvalidQueryError):
        ZeroShotClassifier(held_out[0], labels, templates)


def test_labels_are_stripped(held_out):
    classifier = ZeroShotClassifier(held_out[0], [" red", "blue "], ["a {}"])
    assert classifier.labels == ["red", "blue"]
    assert classifier.classify(held_out[1][:1])[0][0][0] in {"red", "blue"}
