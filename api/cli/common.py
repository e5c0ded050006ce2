"""What the commands share: the consoles, the common options, settings from the environment and the
command line, and opening the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mmsearch.config import Settings

out = Console()
err = Console(stderr=True)

IndexDir = Annotated[
    Path | None, typer.Option("--index-dir", "-i", help="Index folder [env MMSEARCH_INDEX_DIR]")
]
Model = Annotated[
    str | None,
    typer.Option("--model", "-m", help="open_clip model name or local model folder (default: the index's)"),
]
Pretrained = Annotated[str | None, typer.Option(help="Pretrained tag or checkpoint file for --model")]
RandomWeights = Annotated[bool, typer.Option("--random-weights", help="Random weights (speed tests only)")]
Device = Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps")]


def settings_from(
    index_dir: Path | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    random_weights: bool = False,
    device: str | None = None,
    speech: dict | None = None,
    **indexer: object,
) -> Settings:
    """Environment and defaults first, then whatever was given on the command line."""
    s = Settings()
    updates: dict = {}
    speech_updates = {k: v for k, v in (speech or {}).items() if v is not None}
    if speech_updates:
        updates["speech"] = s.speech.model_copy(update=speech_updates)
    if index_dir is not None:
        updates["index_dir"] = index_dir
    chosen = {"name": model, "pretrained": pretrained, "device": device}
    model_updates = {k: v for k, v in chosen.items() if v is not None}
    if random_weights:
        model_updates["random_weights"] = True
    if model_updates:
        updates["model"] = s.model.model_copy(update=model_updates)
    indexer_updates = {k: v for k, v in indexer.items() if v not in (None, [], ())}
    if indexer_updates:
        updates["indexer"] = s.indexer.model_copy(update=indexer_updates)
    return Settings.model_validate({**s.model_dump(), **updates}) if updates else s


def open_engine(settings: Settings, create: bool = False):
    from mmsearch.query.engine import Engine  # torch and open_clip load here, not for --help

    with err.status(f"loading model and index {settings.index_dir} ..."):
        return Engine.open(settings, create=create)
