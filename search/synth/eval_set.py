"""A held-out labelled set of synthetic shapes for `mmsearch eval`: pictures of seeds no model here was
trained on (the committed shapes models learnt from seed 0; the tests' own held-out pictures use 1 to
3), and the labelled set that grades an index of them (data/eval/shapes.json is `labelled_set()`).

    out_dir/gallery/red-circle/red-circle-0000.jpg ...   the pictures to index; also the zero-shot
                                                         set, a folder per class
    out_dir/queries/red-circle.jpg ...                   one query picture per class, not indexed
    out_dir/shapes.json                                  the labelled set (root: out_dir)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmsearch.synth.shapes import COLOURS, SHAPES, caption, render

SEED = 7  # the gallery's; the query pictures use SEED + 1
PER_CLASS = 4
SIZE = 128


def labelled_set(per_class: int = PER_CLASS, root: str | None = None) -> dict:
    """The labelled set for a gallery of `per_class` pictures per class: a text query per class (its
    caption) and an image query per class, each answered by that class's pictures; the gallery as the
    zero-shot set, with the captions' own form as the one template; two concepts across classes."""
    queries, images = [], []
    for colour in COLOURS:
        for shape in SHAPES:
            name = f"{colour}-{shape}"
            relevant = [f"gallery/{name}/{name}-{i:04d}.jpg" for i in range(per_class)]
            queries.append({"text": caption(colour, shape), "relevant": relevant})
            images.append({"image": f"queries/{name}.jpg", "relevant": relevant})

    def files(colours: tuple[str, ...], shapes: tuple[str, ...]) -> list[str]:
        names = [f"{c}-{s}" for c in colours for s in shapes]
        return [f"gallery/{n}/{n}-{i:04d}.jpg" for n in names for i in range(per_class)]

    return {
        "name": "shapes-heldout",
        "root": root,
        "queries": queries + images,
        "zero_shot": {"folder": "gallery", "templates": ["a {}"]},
        "concepts": {  # across the captions: what a user teaches by examples, and would type instead
            "stars": {"query": "a star", "items": files(COLOURS, ("star",))},
            "warm colours": {"query": "a warm colour", "items": files(("red", "orange", "yellow"), SHAPES)},
            "pointy shapes": {
                "query": "a pointy shape",
                "items": files(COLOURS, ("star", "triangle", "cross")),
            },
        },
    }


def write(out_dir: Path, per_class: int = PER_CLASS, seed: int = SEED) -> Path:
    """Write the pictures and out_dir/shapes.json; return the JSON's path. The same arguments always give
    the same files; the labelled set depends on `per_class` alone."""
    if per_class < 1:
        raise ValueError("per_class must be at least 1")
    out_dir = Path(out_dir)
    for ci, colour in enumerate(COLOURS):
        for si, shape in enumerate(SHAPES):
            name = f"{colour}-{shape}"
            folder = out_dir / "gallery" / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                picture = render(colour, shape, np.random.default_rng([seed, ci, si, i]), SIZE)
                picture.save(folder / f"{name}-{i:04d}.jpg", "JPEG", quality=95)
            (out_dir / "queries").mkdir(exist_ok=True)
            query = render(colour, shape, np.random.default_rng([seed + 1, ci, si, 0]), SIZE)
            query.save(out_dir / "queries" / f"{name}.jpg", "JPEG", quality=95)
    path = out_dir / "shapes.json"
    path.write_text(json.dumps(labelled_set(per_class, root="."), indent=1) + "\n", encoding="utf-8")
    return path
