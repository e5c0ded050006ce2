"""Looking after an index: `classify` (zero-shot tags), `dedup`, `info`, `reindex`, and `serve` (HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
)

from mmsearch.api.access import AccessMiddleware, check_exposure
from mmsearch.api.cli.common import (
    Device,
    IndexDir,
    Model,
    err,
    open_engine,
    out,
    settings_from,
)
from mmsearch.config import Settings
from mmsearch.errors import ConfigError, MMSearchError


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
    from mmsearch.encode.images import is_raw
    from mmsearch.query.request import Picture
    from mmsearch.user_files import read_file

    s = settings_from(index_dir)
    engine = open_engine(s)
    names = labels.split(",")
    if image is not None:
        picture = Picture(read_file(image, s.search.max_picture_bytes), is_raw(image))
        for label, p in engine.classify(picture, names, template, top, threshold):
            out.print(f"{p:6.3f}  {label}")
        return
    with Progress(
        TextColumn("tagging"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("tag", total=engine.info()["indexed"])
        tagged, given = engine.tag_collection(
            names, template, threshold, on_progress=lambda n: bar.update(task, completed=n)
        )
    out.print(f"tagged {tagged} items: " + ", ".join(f"{label} {n}" for label, n in given.most_common()))


def dedup(
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Pictures at least this alike")] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups as JSON")] = False,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the groups to this CSV file")] = None,
    index_dir: IndexDir = None,
) -> None:
    """Group duplicates: exact copies (same content hash) and near-identical images."""
    from mmsearch.query.dedup import groups_to_json, write_csv

    groups = open_engine(settings_from(index_dir)).duplicates(threshold)
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
    from mmsearch.encode.factory import uses_kept_tower
    from mmsearch.encode.models import planned_query_backend

    planned = planned_query_backend(s.model, recorded["params"])
    held = query_tower.usable(s.index_dir / query_tower.FOLDER, recorded["fingerprint"])
    if held and uses_kept_tower(s.model):
        planned = "onnx-int8"  # the index's own tower (Engine.open)
    tower = (
        f"query tower in the index (cosine >= {held.cosine_min:.4f})"
        if held
        else "no query tower in the index"
    )
    return f"{planned} here (setting: {s.model.query_backend}); {tower}"


def reindex(index_dir: IndexDir = None) -> None:
    """Rebuild the FAISS file from the vectors stored in the catalog."""
    engine = open_engine(settings_from(index_dir))
    out.print(f"rebuilt the vector index: {engine.rebuild()} vectors")


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


def mcp(
    index_dir: IndexDir = None,
    http: Annotated[bool, typer.Option("--http", help="Streamable HTTP at /mcp instead of stdio")] = False,
    host: Annotated[str, typer.Option(help="Bind address, with --http")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port, with --http")] = 8001,
    model: Model = None,
    device: Device = None,
) -> None:
    """Serve the index to LLM agents over the Model Context Protocol (tools: search, search_moments,
    similar, get_item, classify, ask); stdio unless --http. Over HTTP the API's keys apply
    (MMSEARCH_API__READ_KEYS / MMSEARCH_API__ADMIN_KEYS; required off loopback). Needs pip install
    'mmsearch[mcp]'."""
    try:
        from mmsearch.api.mcp_server import build
    except ImportError as exc:
        raise ConfigError(f"mmsearch mcp needs: pip install 'mmsearch[mcp]' ({exc})") from exc
    s = settings_from(index_dir, model, device=device)
    api = s.api.model_copy(update={"host": host, "port": port})
    if http:
        check_exposure(api)
    server = build(open_engine(s), s)
    if not http:
        server.run("stdio")
        return
    import uvicorn

    uvicorn.run(AccessMiddleware(server.streamable_http_app(host=host), api), host=host, port=port)
