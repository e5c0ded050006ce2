"""`mmsearch`: index, search, inspect, serve, train and benchmark from the command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mmsearch.api.bench.measure import show
from mmsearch.api.output import print_hits, what, where
from mmsearch.config import Backend, Settings
from mmsearch.defaults import CANDIDATES
from mmsearch.errors import MMSearchError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print measured ratios.")
app.add_typer(bench_app, name="bench")
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


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} files/s" if task.speed else "-- files/s", style="cyan")


@app.command()
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
    from mmsearch.indexer import index_folder
    from mmsearch.indexer.manifest import Columns, index_manifest, is_manifest

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
    engine = open_engine(s, create=True)
    columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("index", total=None)
        on_progress = lambda done, total: progress.update(task, completed=done, total=total)  # noqa: E731
        chosen = Columns(key, images, tuple(text) if text else None)
        if ray is not None:
            from mmsearch.indexer.distributed import connect, index_folder_on_ray, index_manifest_on_ray

            connect(ray)
            if is_manifest(path):
                report = index_manifest_on_ray(
                    path, engine.encoder, engine.store, s, chosen, root, on_progress=on_progress
                )
            else:
                report = index_folder_on_ray(
                    path, engine.encoder, engine.store, s, prune, on_progress=on_progress
                )
        elif is_manifest(path):
            report = index_manifest(
                path, engine.encoder, engine.store, s.indexer, chosen, root, on_progress=on_progress
            )
        else:
            report = index_folder(
                path,
                engine.encoder,
                engine.store,
                s.indexer,
                prune=prune,
                on_progress=on_progress,
                video=s.video,
                speech=s.speech,
            )
    rate = report.indexed / report.seconds if report.seconds else 0.0
    out.print(
        f"indexed {report.indexed}, skipped {report.skipped}, failed {report.failed}, "
        f"removed {report.removed} in {report.seconds:.1f} s ({rate:.1f} files/s)"
    )
    for uri, reason in report.errors[:20]:
        err.print(f"[yellow]failed[/] {uri}: {reason}")
    if len(report.errors) > 20:
        err.print(f"... and {len(report.errors) - 20} more (see `mmsearch info --failures`)")


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="Text query")] = None,
    image: Annotated[Path | None, typer.Option("--image", exists=True, help="Image query file")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=10_000, help="Number of hits")] = 10,
    min_score: Annotated[float | None, typer.Option(help="Drop hits scoring below this")] = None,
    kind: Annotated[str | None, typer.Option(help="Only items of this kind (image, video, audio)")] = None,
    path_prefix: Annotated[str | None, typer.Option(help="Only files whose path starts with this")] = None,
    where: Annotated[
        str | None, typer.Option(help="Filter, e.g. 'category = \"shoes\" and price < 50' (docs/filters.md)")
    ] = None,
    collapse: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Keep one of pictures at least this alike")
    ] = None,
    weight: Annotated[float, typer.Option(help="Weight of the text next to --image or --like")] = 1.0,
    negative: Annotated[
        list[str] | None, typer.Option("--not", help="Push down what matches this text (repeatable)")
    ] = None,
    not_weight: Annotated[float, typer.Option(help="Weight of each --not term")] = 0.5,
    like: Annotated[int | None, typer.Option(help="More like this indexed item (its id)")] = None,
    hybrid: Annotated[
        bool, typer.Option("--hybrid", help="Also match words in titles, transcripts, fields (full text)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    index_dir: IndexDir = None,
    model: Model = None,
    pretrained: Pretrained = None,
    device: Device = None,
) -> None:
    """Search by text, by image (--image FILE), or both composed: `--image dress.jpg "red" --weight 0.3
    --not striped`, `--like 42 "in blue"`."""
    from mmsearch.errors import InvalidQueryError
    from mmsearch.query.engine import Filters, Term

    if query is None and image is None and like is None:
        raise InvalidQueryError("give a text query, --image FILE or --like ITEM_ID")
    filters = Filters(kind, str(Path(path_prefix).resolve()) if path_prefix else None, min_score, where)
    s = settings_from(index_dir, model, pretrained, device=device)
    engine = open_engine(s)
    picture = None
    if image is not None:
        from mmsearch.encode.images import decode_image

        picture = decode_image(image.read_bytes(), s.indexer.max_image_pixels).image
    given = [t for t in (picture, like, query) if t is not None]
    if negative or like is not None or len(given) > 1:
        terms = [Term(t, weight if isinstance(t, str) else 1.0) for t in given]
        terms += [Term(text, -not_weight) for text in negative or []]
        hits = engine.search_composed(terms, k, filters, collapse=collapse)
    elif picture is not None:
        hits = engine.search_image(picture, k, filters, collapse=collapse)
    else:
        hits = engine.search_text(query or "", k, filters, collapse=collapse, hybrid=hybrid)
    print_hits(out, hits, as_json)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A question about the collection, in plain language")],
    kind: Annotated[str | None, typer.Option(help="Only items of this kind (image, video, audio)")] = None,
    path_prefix: Annotated[str | None, typer.Option(help="Only files whose path starts with this")] = None,
    backend: Annotated[
        str | None, typer.Option(help="local, openai or anthropic [MMSEARCH_ANSWER__BACKEND]")
    ] = None,
    vlm: Annotated[
        str | None, typer.Option("--vlm", help="VLM name or folder [MMSEARCH_ANSWER__MODEL]")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL for openai/anthropic backends")] = None,
    index_dir: IndexDir = None,
) -> None:
    """Answer a question from the collection with a vision-language model, streaming, then list the
    hits it cites."""
    from pydantic import ValidationError

    from mmsearch.answer.answerer import Answer, Answerer
    from mmsearch.config import AnswerSettings
    from mmsearch.errors import ConfigError
    from mmsearch.query.engine import Filters

    s = settings_from(index_dir)
    chosen = {k: v for k, v in {"backend": backend, "model": vlm, "base_url": base_url}.items() if v}
    try:
        answer_settings = AnswerSettings.model_validate({**s.answer.model_dump(), **chosen})
    except ValidationError as exc:
        raise ConfigError(f"invalid answer settings: {exc.errors()[0]['msg']}") from None
    s = s.model_copy(update={"answer": answer_settings})
    engine = open_engine(s)
    answerer = Answerer(engine, s.answer)
    filters = Filters(kind, str(Path(path_prefix).resolve()) if path_prefix else None)
    result = None
    for piece in answerer.stream(question, filters):
        if isinstance(piece, Answer):
            result = piece
        else:
            out.print(piece, end="", highlight=False, markup=False)
    out.print()
    if result is None or not result.citations:
        return
    table = Table("#", "kind", "path", "when", "what", box=None, title="cited")
    for e in result.citations:
        table.add_row(f"[{e.number}]", e.hit.kind, e.hit.uri, where(e.hit), what(e.hit))
    out.print(table)


@app.command()
def classify(
    labels: Annotated[str, typer.Option(help="Comma-separated labels, e.g. 'shoe,bag,hat'")],
    template: Annotated[
        list[str] | None, typer.Option(help="Prompt template with {} (repeatable; default: a CLIP ensemble)")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Multi-label: every label whose cosine reaches this")
    ] = None,
    image: Annotated[
        Path | None, typer.Option(exists=True, help="Classify this file instead of tagging")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Labels to show for --image")] = 3,
    index_dir: IndexDir = None,
) -> None:
    """Zero-shot tags for the whole collection (stored, filterable as `tag = shoe`, re-runnable), or
    label probabilities for one --image."""
    from mmsearch.learn.classify import ZeroShotClassifier, tag_collection

    s = settings_from(index_dir)
    engine = open_engine(s)
    classifier = ZeroShotClassifier(engine.encoder, labels.split(","), template)
    if image is not None:
        from mmsearch.encode.images import decode_image

        picture = decode_image(image.read_bytes(), s.indexer.max_image_pixels).image
        vector = engine.encoder.encode_images([picture])
        for label, p in classifier.classify(vector, top=min(top, len(classifier.labels)))[0]:
            out.print(f"{p:6.3f}  {label}")
        return
    with Progress(
        TextColumn("tagging"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("tag", total=engine.info()["indexed"])
        tagged, given = tag_collection(
            engine.store.catalog, classifier, threshold, on_progress=lambda n: bar.update(task, completed=n)
        )
    out.print(f"tagged {tagged} items: " + ", ".join(f"{label} {n}" for label, n in given.most_common()))


@app.command()
def dedup(
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Pictures at least this alike")] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups as JSON")] = False,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the groups to this CSV file")] = None,
    index_dir: IndexDir = None,
) -> None:
    """Group duplicates: exact copies (same content hash) and near-identical images."""
    from mmsearch.query.dedup import find_duplicates, groups_to_json, write_csv

    engine = open_engine(settings_from(index_dir))
    groups = find_duplicates(engine.store, threshold)
    if csv_out is not None:
        write_csv(groups, csv_out)
    if as_json:
        out.print_json(groups_to_json(groups))
        return
    for n, group in enumerate(groups, 1):
        out.print(f"[bold]group {n}[/] {group.kind} (>= {group.min_similarity:.3f} alike)")
        for member in group.members:
            out.print(f"  {member.uri}", highlight=False)
    out.print(f"{len(groups)} groups, {sum(len(g.members) for g in groups)} items")


@app.command()
def info(
    index_dir: IndexDir = None,
    failures: Annotated[bool, typer.Option("--failures", help="List the files that failed")] = False,
) -> None:
    """Show the index's model, counts and failures."""
    from mmsearch.storage.catalog import Catalog
    from mmsearch.storage.layout import read_manifest

    s = settings_from(index_dir)
    manifest = read_manifest(s.index_dir)
    if manifest is None:
        raise MMSearchError(f"no index at {s.index_dir}")
    catalog = Catalog(s.catalog_url())
    m = manifest["model"]
    out.print(f"index    {s.index_dir.resolve()}")
    out.print(
        f"model    {m['name']} {m['pretrained'] or ''}{' (random weights)' if m['random_weights'] else ''}"
        f" dim={m['dim']} fingerprint={m['fingerprint']}"
    )
    out.print(f"backend  {_backend_line(s, m)}")
    if "params" in m:
        out.print(f"queries  {_query_line(s, m)}")
    counts = catalog.counts()
    spaces = ", ".join(f"{len(ids)} {space}" for space, ids in catalog.segment_ids_by_space().items())
    out.print(
        f"items    {counts['indexed']} indexed, {counts['failed']} failed; "
        f"{counts['segments']} vectors ({spaces})"
    )
    limit = 1000 if failures else 5
    for uri, reason in catalog.failures(limit):
        out.print(f"  failed {uri}: {reason}")
    catalog.close()


def _backend_line(s: Settings, recorded: dict) -> str:
    """The backend this machine picks for the index's model, and the one that made the index."""
    from mmsearch.encode.models import planned_backend

    made = f"index made with {recorded.get('backend', 'torch')}"
    if "params" not in recorded:  # indexes from before backends were recorded
        return made
    return f"{planned_backend(s.model, recorded['params'])} here (setting: {s.model.backend}); {made}"


def _query_line(s: Settings, recorded: dict) -> str:
    """How query texts are encoded here: the planned query backend, and whether the index holds a
    query tower for its model (what a one-shot search loads without torch, search/query/quick.py)."""
    from mmsearch.encode import query_tower
    from mmsearch.encode.models import planned_query_backend

    planned = planned_query_backend(s.model, recorded["params"])
    held = query_tower.usable(s.index_dir / query_tower.FOLDER, recorded["fingerprint"])
    tower = (
        f"query tower in the index (cosine >= {held.cosine_min:.4f})"
        if held
        else "no query tower in the index"
    )
    return f"{planned} here (setting: {s.model.query_backend}); {tower}"


@app.command()
def reindex(index_dir: IndexDir = None) -> None:
    """Rebuild the FAISS file from the vectors stored in the catalog."""
    engine = open_engine(settings_from(index_dir))
    out.print(f"rebuilt the vector index: {engine.store.rebuild()} vectors")


@app.command()
def serve(
    index_dir: IndexDir = None,
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    model: Model = None,
    device: Device = None,
    index_roots: Annotated[
        list[Path] | None,
        typer.Option("--index-root", exists=True, file_okay=False, help="A folder /admin/index may index"),
    ] = None,
) -> None:
    """Serve the HTTP API, its docs (/docs) and the web page (/). Off loopback, API keys are required
    (MMSEARCH_API__READ_KEYS / MMSEARCH_API__ADMIN_KEYS)."""
    import uvicorn

    from mmsearch.api.app import create_app

    s = settings_from(index_dir, model, device=device)
    asked = {"host": host, "port": port, "index_roots": index_roots}
    s = s.model_copy(update={"api": s.api.model_copy(update={k: v for k, v in asked.items() if v})})
    uvicorn.run(create_app(s), host=s.api.host, port=s.api.port)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write images and captions.csv into")],
    per_class: Annotated[int, typer.Option(min=1, help="Images per colour x shape class")] = 20,
    seed: Annotated[int, typer.Option(help="Seed (use another one for held-out data)")] = 0,
    size: Annotated[int, typer.Option(min=16, help="Image side in pixels")] = 128,
    fmt: Annotated[str, typer.Option("--format", help="png or jpg")] = "png",
) -> None:
    """Write the synthetic captioned shapes dataset (for training, tests and the offline demo)."""
    from mmsearch.synth.shapes import generate

    pairs = generate(out_dir, per_class, seed=seed, size=size, fmt=fmt)
    out.print(f"wrote {len(pairs)} images and {out_dir / 'captions.csv'}")


@app.command()
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

    from mmsearch.learn.train import TrainConfig, load_pairs
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


@bench_app.command("index")
def bench_index_cmd(
    images: Annotated[int, typer.Option(min=1, help="Number of camera-size JPEGs")] = 256,
    size: Annotated[str, typer.Option(help="JPEG size WxH")] = "1600x1200",
    image_dir: Annotated[Path | None, typer.Option(help="Keep the generated JPEGs here for reuse")] = None,
    model: Annotated[str, typer.Option("--model", "-m")] = "ViT-B-32",
    pretrained: Pretrained = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    workers: Annotated[int | None, typer.Option(min=1, help="Decode threads (default: the cores)")] = None,
    device: Device = None,
    backend: Annotated[Backend, typer.Option(help="Encoder backend (auto: by rules per machine)")] = "auto",
    compare: Annotated[
        bool, typer.Option("--compare", help="Every backend this machine runs, each in its own process")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pipeline throughput (JPEG files -> committed vectors) / model-only throughput, in one run."""

    from mmsearch.api.bench.index import bench_index

    w, h = (int(v) for v in size.lower().split("x"))
    s = settings_from(
        None, model, pretrained, pretrained is None, device, batch_size=batch_size, decode_workers=workers
    )
    s = s.model_copy(
        update={"model": s.model.model_copy(update={"batch_size": batch_size, "backend": backend})}
    )
    if compare:
        _bench_compare(s, images, image_dir, (w, h), as_json)
        return
    with err.status("benchmarking ..."):
        result = bench_index(s, images, image_dir, (w, h))
    show(
        out,
        result,
        as_json,
        f"pipeline {result.pipeline_ips:.1f} images/s / model-only {result.model_only_ips:.1f} images/s "
        f"= [bold]{result.ratio:.2f}[/]",
    )


def _bench_compare(s: Settings, images: int, image_dir: Path | None, size: tuple[int, int], as_json: bool):
    from dataclasses import asdict

    from rich.table import Column

    from mmsearch.api.bench.backends import backends_here, compare_backends

    backends = backends_here()
    with err.status(f"benchmarking {', '.join(backends)}, each in its own process ..."):
        result = compare_backends(s, images, image_dir, size, backends)
    if as_json:
        out.print_json(data=asdict(result))
        return
    out.print(f"{result.model}, {result.images} JPEGs of {result.image_size}, batch {result.batch_size}")
    headers = ("load s", "model img/s", "e2e img/s", "peak RSS MiB", "PSS MiB", "cos", "min")
    table = Table(Column("backend", no_wrap=True), *headers)
    for b in result.backends:
        table.add_row(*("-" if v is None else str(v) for v in asdict(b).values()))
    out.print(table)
    out.print("img/s: model only, then end to end (e2e); memory: the process's peak RSS, its PSS at the end")


@bench_app.command("ray")
def bench_ray_cmd(
    images: Annotated[int, typer.Option(min=1, help="Number of camera-size JPEGs")] = 200,
    runs: Annotated[int, typer.Option(min=1, help="Runs of each way, alternating; the best counts")] = 2,
    image_dir: Annotated[Path | None, typer.Option(help="Keep the generated JPEGs here for reuse")] = None,
    model: Annotated[str, typer.Option("--model", "-m")] = "ViT-B-32",
    pretrained: Pretrained = None,
    device: Device = None,
    ray: Annotated[str, typer.Option(help="Ray address (auto: the running cluster; local: start one)")] = (
        "local"
    ),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Indexing throughput on Ray / the plain pipeline's, same files and model, in one run; and the
    machine's busy CPU seconds of each (Ray's own processes included), the steadier measure."""

    from mmsearch.api.bench.ray import bench_ray
    from mmsearch.indexer.distributed import connect

    s = settings_from(None, model, pretrained, pretrained is None, device)
    connect(ray)  # not timed: a cluster is started once, not per run
    with err.status("benchmarking ..."):
        result = bench_ray(s, images, image_dir, runs)
    show(
        out,
        result,
        as_json,
        f"Ray {result.ray_ips:.1f} images/s / plain {result.plain_ips:.1f} images/s "
        f"= [bold]{result.ratio:.2f}[/]; CPU seconds plain {result.plain_cpu_s} / Ray {result.ray_cpu_s} "
        f"= [bold]{result.cpu_ratio:.2f}[/]",
    )


@bench_app.command("media")
def bench_media_cmd(
    videos: Annotated[int, typer.Option(min=1, help="Number of generated videos")] = 2,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each video in seconds")] = 30.0,
    size: Annotated[str, typer.Option(help="Video size WxH")] = "1280x720",
    media_dir: Annotated[Path | None, typer.Option(help="Keep the generated videos here for reuse")] = None,
    speech_model: Annotated[
        str | None, typer.Option(help="faster-whisper size or local folder [env MMSEARCH_SPEECH__MODEL]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keyframe extraction and speech transcription speed (x real time) on generated media, in one run."""

    from mmsearch.api.bench.media import bench_media

    w, h = (int(v) for v in size.lower().split("x"))
    s = settings_from(speech={"model": speech_model})
    with err.status("benchmarking ..."):
        result = bench_media(s, videos, seconds, (w, h), media_dir)
    show(
        out,
        result,
        as_json,
        f"keyframes [bold]{result.keyframes_x_realtime:.1f}x[/] real time, "
        f"speech [bold]{result.speech_x_realtime:.1f}x[/] real time",
    )


@bench_app.command("search")
def bench_search_cmd(
    sizes: Annotated[str, typer.Option(help="Comma-separated collection sizes")] = "100000,1000000",
    ten_million: Annotated[
        bool, typer.Option("--10m", help="Add 10,000,000 vectors (20 GB of float32 at 512-d)")
    ] = False,
    dim: Annotated[int, typer.Option(min=2, help="Vector dimension (the model's; ViT-B-32: 512)")] = 512,
    types: Annotated[str, typer.Option(help="Comma-separated index types: flat, hnsw, ivf_pq")] = (
        "flat,hnsw,ivf_pq"
    ),
    queries: Annotated[int, typer.Option(min=1, help="Queries per size")] = 200,
    json_out: Annotated[Path | None, typer.Option(help="Write the results here as JSON")] = None,
    scratch: Annotated[
        Path | None, typer.Option(help="Folder for vector sets over 4 GiB, memory-mapped (default: temp)")
    ] = None,
    nprobe: Annotated[
        str | None,
        typer.Option(help="Comma-separated IVF lists visited per query: a row each (default: the setting)"),
    ] = None,
    candidates: Annotated[
        int, typer.Option(min=1, help="Top hits rescored exactly (the engine's default)")
    ] = (CANDIDATES),
) -> None:
    """Index types on synthetic unit vectors: build time, bytes per vector, recall@10 before and after
    exact rescoring, p50 / p99 latency, batch QPS, and how latency grows with N."""

    from mmsearch.api.bench.search import TYPES, bench_search, report

    kinds = [t.strip() for t in types.split(",") if t.strip()]
    if unknown := set(kinds) - set(TYPES):
        raise typer.BadParameter(f"unknown index types {sorted(unknown)}; known: {', '.join(TYPES)}")
    counts = [int(s) for s in sizes.split(",")] + ([10_000_000] if ten_million else [])
    nprobes = [int(v) for v in nprobe.split(",")] if nprobe else None
    result = bench_search(counts, dim, kinds, queries, candidates, err, scratch=scratch, nprobes=nprobes)
    report(result, out, json_out)


@bench_app.command("serve")
def bench_serve_cmd(
    index_dir: IndexDir = None,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients")] = 16,
    seconds: Annotated[float, typer.Option(min=1, help="How long the load runs")] = 30.0,
    image_share: Annotated[float, typer.Option(min=0, max=1, help="Share of picture queries")] = 0.3,
    index_while: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="Index this folder during the load"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """HTTP latency (p50 / p99) of text and picture queries from concurrent clients, optionally while an
    index run writes, against the same server's latency with one client, in one run."""
    from dataclasses import asdict

    from mmsearch.api.bench.serve import bench_serve

    s = settings_from(index_dir)
    with err.status(f"{clients} clients for {seconds:g} s ..."):
        result = bench_serve(s, clients, seconds, image_share=image_share, index_while=index_while)
    if as_json:
        out.print_json(data=result.to_dict())
        return
    table = Table("phase", "kind", "requests", "errors", "p50 ms", "p99 ms", "max ms")
    for phase, kind in (("1 client", "text"), ("1 client", "image"), ("load", "text"), ("load", "image")):
        row = asdict(getattr(result, f"{'idle' if phase == '1 client' else 'load'}_{kind}"))
        table.add_row(phase, kind, *("-" if v is None else str(v) for v in row.values()))
    out.print(table)
    run = result.index_run
    if run is not None:
        out.print(f"index run during the load: {run['state']}, {run['done']} of {run['total']} files")
    for sample in result.error_samples:
        err.print(f"[red]error[/] {sample}")
    out.print(
        f"{clients} clients: [bold]{result.throughput_rps}[/] requests/s, {result.errors} errors; "
        f"text p50 under load / alone: [bold]{result.slowdown()}x[/]"
    )


@bench_app.command("oneshot")
def bench_oneshot_cmd(
    index_dir: IndexDir = None,
    query: Annotated[str, typer.Option(help="The text searched for")] = "a red circle",
    runs: Annotated[int, typer.Option(min=1, help="Processes timed each way")] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Whole-process time of a one-shot `mmsearch search "text"`: the light way (no torch) against
    the full way, in one run on the same index."""
    from mmsearch.api.bench.oneshot import bench_oneshot

    s = settings_from(index_dir)
    with err.status(f"{2 * runs + 1} searches, one process each ..."):
        result = bench_oneshot(s.index_dir, query, runs)
    way = (
        ""
        if result.light_took_the_light_way
        else " (the light way declined this index: see search/query/quick.py)"
    )
    show(out, result, as_json, f"one-shot search, full / light: [bold]{result.speedup}x[/]{way}")


@bench_app.command("gpu")
def bench_gpu_cmd(
    images: Annotated[int, typer.Option(min=1, help="Number of camera-size JPEGs")] = 512,
    model: Annotated[str, typer.Option("--model", "-m", help="open_clip architecture (random weights)")] = (
        "ViT-B-32"
    ),
    vectors: Annotated[int, typer.Option(min=1000, help="512-d vectors for the FAISS GPU rows")] = 10**6,
    queries: Annotated[int, typer.Option(min=1, help="Queries for the FAISS GPU rows")] = 1000,
    json_out: Annotated[Path | None, typer.Option(help="Write the results here as JSON")] = None,
) -> None:
    """The CUDA paths in one run: indexing with fp16 on the GPU / the CPU path on the same files, fp16
    against float32 vectors, FAISS on the GPU at 1M vectors, peak GPU memory. Without a CUDA GPU: one
    line, exit 0."""
    from dataclasses import asdict

    from mmsearch.api.bench.gpu import gpu_check, no_cuda_reason, summary
    from mmsearch.api.bench.measure import write_json

    if reason := no_cuda_reason():
        out.print(f"gpu-check: no GPU here ({reason}); nothing checked")
        return
    result = gpu_check(images, model, vectors, queries, log=err.log)
    if json_out is not None:
        write_json(json_out, asdict(result))
    for line in summary(result):
        out.print(line, highlight=False, soft_wrap=True)


def main() -> None:
    # Decode threads share the cores with torch's OpenMP workers; spinning workers would take the
    # decoders' time (pipeline/model-only 0.85 -> 0.90 on 2 cores). Must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except MMSearchError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
