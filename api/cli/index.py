"""`mmsearch index`: folders and manifests into an index, with a progress bar; on Ray with --ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mmsearch.api.cli.common import (
    Device,
    IndexDir,
    Model,
    Pretrained,
    RandomWeights,
    err,
    open_engine,
    out,
    settings_from,
)


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} files/s" if task.speed else "-- files/s", style="cyan")


def index(
    path: Annotated[Path, typer.Argument(exists=True, help="Folder (or file) to index")],
    index_dir: IndexDir = None,
    model: Model = None,
    pretrained: Pretrained = None,
    random_weights: RandomWeights = False,
    device: Device = None,
    include: Annotated[list[str] | None, typer.Option(help="Glob of paths to index (repeatable)")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of paths to skip (repeatable)")] = None,
    prune: Annotated[bool, typer.Option(help="Drop catalog entries of deleted files under PATH")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Images per encoder batch")] = None,
    workers: Annotated[int | None, typer.Option(help="Decode worker threads")] = None,
    speech: Annotated[
        bool | None, typer.Option("--speech/--no-speech", help="Transcribe audio files and sound tracks")
    ] = None,
    speech_model: Annotated[
        str | None, typer.Option(help="faster-whisper size (tiny.en, base, small, ...) or local folder")
    ] = None,
    ocr: Annotated[
        bool | None,
        typer.Option("--ocr/--no-ocr", help="Read the text written in pictures (needs the ocr extra)"),
    ] = None,
    faces: Annotated[
        bool | None,
        typer.Option(
            "--faces/--no-faces",
            help="Find the faces in pictures and keyframes and group them into people (needs the people "
            "extra)",
        ),
    ] = None,
    safe_search: Annotated[
        bool | None,
        typer.Option(
            "--safe-search/--no-safe-search",
            help="Flag explicit content (the field explicit; searches leave it out unless asked; needs the "
            "faces extra)",
        ),
    ] = None,
    stacks: Annotated[
        bool,
        typer.Option(
            "--stacks", help="Keep stacks: shots of one moment shown as one hit, its best shot (from now on)"
        ),
    ] = False,
    key: Annotated[str | None, typer.Option(help="Manifest: the key column (default id, sku, key)")] = None,
    images: Annotated[
        str | None, typer.Option(help="Manifest: the image column (default images, image)")
    ] = None,
    text: Annotated[
        list[str] | None,
        typer.Option(help="Manifest: columns embedded as text (default title, name, description)"),
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Manifest: absolute image paths must be under this")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Index the images, or a manifest's products, on Ray at this address (auto: the running "
            "cluster; local: start one); video and audio still go through the local pipeline. Needs the "
            "ray extra."
        ),
    ] = None,
) -> None:
    """Index the images, videos and audio under PATH, or the products a manifest (CSV, JSONL, Parquet)
    lists (incremental: unchanged files and rows are skipped)."""
    from mmsearch.indexer.manifest import Columns

    s = settings_from(
        index_dir,
        model,
        pretrained,
        random_weights,
        device,
        speech={"enabled": speech, "model": speech_model},
        include=include or [],
        exclude=exclude or [],
        batch_size=batch_size,
        decode_workers=workers,
    )
    if ocr is not None:
        s = s.model_copy(update={"ocr": s.ocr.model_copy(update={"enabled": ocr})})
    if faces is not None:
        s = s.model_copy(update={"faces": s.faces.model_copy(update={"enabled": faces})})
    if safe_search is not None:
        s = s.model_copy(update={"safety": s.safety.model_copy(update={"enabled": safe_search})})
    engine = open_engine(s, create=True)
    if stacks:
        engine.keep_stacks()
    columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("index", total=None)
        on_progress = lambda done, total: progress.update(task, completed=done, total=total)  # noqa: E731
        chosen = Columns(key, images, tuple(text) if text else None)
        report = engine.index(path, prune, ray, chosen, root, on_progress)
    rate = report.indexed / report.seconds if report.seconds else 0.0
    out.print(
        f"indexed {report.indexed}, skipped {report.skipped}, failed {report.failed}, "
        f"removed {report.removed} in {report.seconds:.1f} s ({rate:.1f} files/s)"
    )
    if report.passed_over:
        what = ", ".join(f"{ext} {n}" for ext, n in report.passed_over.most_common())
        out.print(f"passed over {report.passed_over.total()} files that are not media here: {what}")
    for uri, reason in report.errors[:20]:
        err.print(f"[yellow]failed[/] {uri}: {reason}")
    if len(report.errors) > 20:
        err.print(f"... and {len(report.errors) - 20} more (see `mmsearch info --failures`)")
