"""`mmsearch synth` (the synthetic shapes dataset) and `mmsearch train` (contrastive training)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from mmsearch.api.cli.common import (
    Pretrained,
    err,
    out,
)


def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write images and captions.csv into")],
    per_class: Annotated[
        int | None, typer.Option(min=1, help="Images per colour x shape class [default: 20; 4 with --eval]")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed (use another one for held-out data) [default: 0; 7 with --eval]")
    ] = None,
    size: Annotated[int, typer.Option(min=16, help="Image side in pixels")] = 128,
    fmt: Annotated[str, typer.Option("--format", help="png or jpg")] = "png",
    eval_set: Annotated[
        bool,
        typer.Option(
            "--eval", help="Write the held-out labelled set for `mmsearch eval` instead (128 px JPEGs)"
        ),
    ] = False,
) -> None:
    """Write the synthetic captioned shapes dataset (for training, tests and the offline demo), or with
    --eval a held-out labelled set: gallery/ to index, queries/ and shapes.json (docs/evaluation.md)."""
    if eval_set:
        from mmsearch.synth import eval_set as held_out

        labelled = held_out.write(
            out_dir, per_class or held_out.PER_CLASS, held_out.SEED if seed is None else seed
        )
        out.print(f"wrote {out_dir / 'gallery'}, {out_dir / 'queries'} and {labelled}", highlight=False)
        return
    from mmsearch.synth.shapes import generate

    pairs = generate(out_dir, per_class or 20, seed=seed or 0, size=size, fmt=fmt)
    out.print(f"wrote {len(pairs)} images and {out_dir / 'captions.csv'}")


def train(
    captions: Annotated[
        Path, typer.Argument(exists=True, help="CSV (path,caption) or JSONL of image-caption pairs")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write")],
    base: Annotated[
        str,
        typer.Option(
            help="Model to start from: mmsearch-tiny, an open_clip name, or local-dir:PATH to fine-tune"
        ),
    ] = "mmsearch-tiny",
    pretrained: Pretrained = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=2)] = None,
    lr: Annotated[float | None, typer.Option(min=0.0)] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    partial_captions: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Chance a caption is cut to part of its words (teaches attributes)"
        ),
    ] = None,
    half: Annotated[bool, typer.Option("--half", help="Save the weights as float16 (half the size)")] = False,
) -> None:
    """Train or fine-tune a CLIP model contrastively; the folder it writes works with --model."""
    from dataclasses import replace

    from mmsearch.learn.pairs import load_pairs
    from mmsearch.learn.train import TrainConfig
    from mmsearch.learn.train import train as run_training

    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "partial_captions": partial_captions,
    }
    config = replace(
        TrainConfig(model=base, pretrained=pretrained, half=half),
        **{k: v for k, v in given.items() if v is not None},
    )
    pairs = load_pairs(captions)
    with Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("train", total=config.epochs, loss="--")
        saved = run_training(
            pairs,
            out_dir,
            config,
            on_epoch=lambda e, loss: progress.update(task, completed=e, loss=f"{loss:.3f}"),
        )
    out.print(f"trained on {len(pairs)} pairs; model folder {saved} (use --model {saved})")
