"""`mmsearch eval`: how well an index answers a labelled set (docs/evaluation.md), one index or two
side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mmsearch.api.cli.common import IndexDir, open_engine, out, settings_from


def evaluate(
    labels: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Labelled set (JSON)")],
    root: Annotated[
        Path | None,
        typer.Option(
            file_okay=False, help="Folder the set's paths are relative to (default: the file's root)"
        ),
    ] = None,
    index_dir: IndexDir = None,
    compare: Annotated[
        Path | None, typer.Option(file_okay=False, help="A second index to evaluate beside the first")
    ] = None,
    depth: Annotated[int, typer.Option(min=10, help="Hits fetched per query (ranks beyond: not found)")] = 10,
    json_out: Annotated[
        Path | None, typer.Option(help="Write the report (every figure, per query) here")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option(file_okay=False, help="Write PNG plots here (needs the eval extra)")
    ] = None,
) -> None:
    """Recall@1/5/10, MRR, nDCG@10, moment hits, zero-shot accuracy and query latency on a labelled set."""
    from mmsearch.evaluate import labels as labelled_sets

    labelled = labelled_sets.load(labels)
    base = labelled_sets.root_of(labelled, labels, root)
    if plots is not None:
        from mmsearch.evaluate import plots as plotting

        plotting.pyplot()  # a missing extra fails now, not after the queries
    chosen = [settings_from(index_dir)] + ([settings_from(compare)] if compare is not None else [])
    tied = [labelled_sets.tie_to_index(labelled, base, s) for s in chosen]  # before any model loads
    from mmsearch.evaluate.run import evaluate as run  # torch loads here

    reports = []
    for s, resolved in zip(chosen, tied, strict=True):
        engine = open_engine(s)
        try:
            reports.append(run(engine, resolved, depth))
        finally:
            engine.close()
    names = [str(s.index_dir) for s in chosen]
    summaries = [r.summary() for r in reports]
    out.print(_table(labelled.name, names, summaries))
    if json_out is not None:
        document = {"set": labelled.name, "root": str(base), "indexes": [r.to_dict() for r in reports]}
        if len(reports) == 2:
            document["difference"] = _difference(*summaries)
        json_out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        out.print(f"report: {json_out}", highlight=False)
    if plots is not None:
        written = plotting.write_plots(reports, names, plots)
        out.print(f"plots: {', '.join(str(p) for p in written)}", highlight=False)


def _difference(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """The second index's figures less the first's, where both have them."""
    return {name: second[name] - first[name] for name in first if name in second}


def _table(name: str, indexes: list[str], summaries: list[dict[str, float]]) -> Table:
    table = Table(title=f"{name}")
    table.add_column("metric")
    for index in indexes:
        table.add_column(index, justify="right")
    if len(summaries) == 2:
        table.add_column("difference", justify="right")
        difference = _difference(*summaries)
    for metric in dict.fromkeys(m for s in summaries for m in s):
        cells = [_figure(metric, s.get(metric)) for s in summaries]
        if len(summaries) == 2:
            change = difference.get(metric)
            cells.append("" if change is None else _figure(metric, change, signed=True))
        table.add_row(metric, *cells)
    return table


def _figure(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    places = 1 if metric.endswith(" ms") else 3
    return f"{value:+.{places}f}" if signed else f"{value:.{places}f}"
