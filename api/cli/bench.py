"""`mmsearch bench ...`: each benchmark's options; the measuring lives in api/bench/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mmsearch.api.bench.measure import show
from mmsearch.api.cli.common import (
    Device,
    IndexDir,
    Pretrained,
    err,
    out,
    settings_from,
)
from mmsearch.config import Backend, Settings
from mmsearch.defaults import CANDIDATES

# The options of the benchmarks that index a folder of photos with a stage on and off (ocr, people,
# safety, stacks).
Photos = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A folder of photos")]
PhotoModel = Annotated[str, typer.Option("--model", "-m")]
Runs = Annotated[int, typer.Option(min=1, help="Runs per side; each keeps its best")]
AsJson = Annotated[bool, typer.Option("--json")]

app = typer.Typer(no_args_is_help=True, help="Benchmarks that print measured ratios.", rich_markup_mode=None)


@app.command("index")
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


@app.command("ray")
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


@app.command("media")
def bench_media_cmd(
    videos: Annotated[int, typer.Option(min=1, help="Number of generated videos")] = 2,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each video in seconds")] = 30.0,
    size: Annotated[str, typer.Option(help="Video size WxH")] = "1280x720",
    media_dir: Annotated[Path | None, typer.Option(help="Keep the generated videos here for reuse")] = None,
    speech_model: Annotated[
        str | None, typer.Option(help="faster-whisper size or local folder [env MMSEARCH_SPEECH__MODEL]")
    ] = None,
    video: Annotated[
        list[Path] | None,
        typer.Option(exists=True, dir_okay=False, help="Real videos instead of generated ones"),
    ] = None,
    audio: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="A real recording instead of synthetic speech"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keyframe extraction and speech transcription speed (x real time), on real or generated media."""

    from mmsearch.api.bench.media import bench_media

    w, h = (int(v) for v in size.lower().split("x"))
    s = settings_from(speech={"model": speech_model})
    with err.status("benchmarking ..."):
        result = bench_media(s, videos, seconds, (w, h), media_dir, video or (), audio)
    show(
        out,
        result,
        as_json,
        f"keyframes [bold]{result.keyframes_x_realtime:.1f}x[/] real time (the decoder alone "
        f"{result.decoder_x_realtime:.1f}x: [bold]{result.keyframes_of_decoder:.2f}[/] of it), speech "
        f"[bold]{result.speech_x_realtime:.1f}x[/] real time (Whisper's encoder alone "
        f"{result.encoder_x_realtime:.1f}x: [bold]{result.speech_of_encoder:.2f}[/] of it)",
    )


@app.command("search")
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


@app.command("serve")
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


@app.command("oneshot")
def bench_oneshot_cmd(
    index_dir: IndexDir = None,
    queries: Annotated[
        list[str] | None,
        typer.Option("--query", help="The text searched for; again for more queries [default: a red circle]"),
    ] = None,
    runs: Annotated[int, typer.Option(min=1, help="Processes timed each way")] = 5,
    grow_to: Annotated[
        int | None,
        typer.Option(min=1, help="Search a copy of the index grown to this many items (its items repeated)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Whole-process time of a one-shot `mmsearch search "text"`: the light way (no torch) against
    the full way, in one run on the same index."""
    import tempfile

    from mmsearch.api.bench.oneshot import bench_oneshot

    s = settings_from(index_dir)
    with tempfile.TemporaryDirectory() as tmp:
        searched = s.index_dir
        if grow_to:
            from mmsearch.api.bench.grown import grown

            with err.status(f"growing a copy of the index to {grow_to} items ..."):
                searched = grown(s.index_dir, Path(tmp) / "index", grow_to)
        for query in queries or ["a red circle"]:
            with err.status(f"{query!r}: {2 * runs + 1} searches, one process each ..."):
                result = bench_oneshot(searched, query, runs)
            way = (
                ""
                if result.light_took_the_light_way
                else " (the light way declined this index: see search/query/quick.py)"
            )
            title = f"{query!r}: one-shot search, full / light: [bold]{result.speedup}x[/]{way}"
            show(out, result, as_json, title)


@app.command("text-int8")
def bench_text_int8_cmd(
    model: Annotated[
        str, typer.Option(help="A sentence-transformers model (name or folder)")
    ] = "all-MiniLM-L6-v2",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """int8 against float32 on the text model's real weights, in one run: each sentence's cosine, the
    rankings' agreement, and one query's encode time (torch float32 / ONNX int8)."""
    from mmsearch.api.bench.text_int8 import bench_text_int8

    with err.status("exporting, quantising and comparing ..."):
        result = bench_text_int8(model)
    title = (
        f"{result.model} int8 vs float32: cosine min {result.cosine_min}, top-1 agreement "
        f"{result.top1_agreement}; one query torch / int8: [bold]{result.speedup}x[/]"
    )
    show(out, result, as_json, title)


@app.command("ocr")
def bench_ocr_cmd(
    photos: Photos,
    model: PhotoModel = "ViT-B-32",
    pretrained: Pretrained = None,
    runs: Runs = 2,
    as_json: AsJson = False,
) -> None:
    """Index time with OCR on / with it off on the same photos, in one run, and OCR's share."""
    bench_extra_cmd(photos, "ocr", model, pretrained, runs, as_json)


@app.command("people")
def bench_people_cmd(
    photos: Photos,
    model: PhotoModel = "ViT-B-32",
    pretrained: Pretrained = None,
    runs: Runs = 2,
    as_json: AsJson = False,
) -> None:
    """Index time with faces found (--faces) / without on the same photos, in one run, and their share."""
    bench_extra_cmd(photos, "faces", model, pretrained, runs, as_json)


def photo_settings(model: str, pretrained: str | None) -> Settings:
    """A photo benchmark's settings: the model named, with random weights unless a tag or folder is given."""
    return settings_from(None, model, pretrained, pretrained is None and not Path(model).exists())


def bench_extra_cmd(
    photos: Path, extra: str, model: str, pretrained: str | None, runs: int, as_json: bool
) -> None:
    from mmsearch.api.bench.extras import bench_extra

    s = photo_settings(model, pretrained)
    what = {"ocr": "OCR", "faces": "faces found", "safety": "safe search"}[extra]
    with err.status(f"indexing with {what} off and on ..."):
        result = bench_extra(s, photos, extra, runs)
    title = (
        f"{result.photos} photos: with {what} {result.on_s} s / without {result.off_s} s = "
        f"[bold]{result.on_over_off}x[/]; the share of {what} {result.share:.0%}"
    )
    show(out, result, as_json, title)


@app.command("safety")
def bench_safety_cmd(
    photos: Photos,
    model: PhotoModel = "ViT-B-32",
    pretrained: Pretrained = None,
    runs: Runs = 2,
    as_json: AsJson = False,
) -> None:
    """Index time with safe search (--safe-search) / without on the same photos, in one run, and its share."""
    bench_extra_cmd(photos, "safety", model, pretrained, runs, as_json)


@app.command("stacks")
def bench_stacks_cmd(
    photos: Photos,
    model: PhotoModel = "ViT-B-32",
    pretrained: Pretrained = None,
    runs: Runs = 2,
    as_json: AsJson = False,
) -> None:
    """A picture's look (for the best shot) against its decoding, and index time keeping stacks against
    not, in one run on the same photos."""
    from mmsearch.api.bench.stacks import bench_stacks

    s = photo_settings(model, pretrained)
    with err.status("decoding, measuring, indexing with stacks and without ..."):
        result = bench_stacks(s, photos, runs)
    title = (
        f"{result.photos} photos: a look {result.look_ms} ms / a decode {result.decode_ms} ms = "
        f"[bold]{result.look_over_decode}x[/]; index time keeping stacks / not = "
        f"[bold]{result.stacked_over_plain}x[/] ({result.stacks} stacks)"
    )
    show(out, result, as_json, title)


@app.command("concepts")
def bench_concepts_cmd(
    items: Annotated[int, typer.Option(min=2000, help="Pictures in the catalog")] = 100_000,
    dim: Annotated[int, typer.Option(min=2, help="Vector dimension (the model's; ViT-B-32: 512)")] = 512,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A concept taught by examples on a catalog of ITEMS pictures: teaching it (every item scored and
    tagged) against one pass over the stored vectors, and writing a batch while concepts exist against
    writing one with none, in one run."""
    from mmsearch.api.bench.concepts import BATCH, bench_concepts

    with err.status(f"writing {items} items, then teaching ..."):
        result = bench_concepts(items, dim)
    title = (
        f"{items} items: teach {result.teach_s} s / one pass over the vectors {result.read_pass_s} s = "
        f"[bold]{result.teach_over_read}x[/]; a batch of {BATCH} with concepts / without = "
        f"[bold]{result.write_ratio}x[/]"
    )
    show(out, result, as_json, title)


@app.command("faces")
def bench_faces_cmd(
    photos: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A folder of photos")],
    size: Annotated[int, typer.Option(min=16, max=2048, help="The thumbnails' longer side")] = 256,
    runs: Annotated[int, typer.Option(min=1, help="Runs per side; each keeps its best")] = 2,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Thumbnail time with faces blurred (api.blur_faces) / without, in one run on the same photos."""
    from mmsearch.api.bench.faces import bench_faces

    with err.status("making thumbnails plain and with faces blurred ..."):
        result = bench_faces(Settings(), photos, size, runs)
    title = (
        f"{result.photos} photos, {result.with_faces} with faces: a thumbnail with faces blurred "
        f"{result.blurred_ms} ms / plain {result.plain_ms} ms = [bold]{result.blurred_over_plain}x[/]"
    )
    show(out, result, as_json, title)


@app.command("gpu")
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
