"""How the command line prints hits: a table, or JSON. Shared by the full command line (api/cli/) and
the one-shot search (search/query/quick.py), so both print the same thing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from mmsearch.hits import Hit, clock


def where(hit: Hit) -> str:
    return f"{clock(hit.t_start)}-{clock(hit.t_end)}" if hit.t_start is not None else ""


def how(hit: Hit) -> str:
    """How a hit's text came: written (read in a picture or a frame: it has boxes), said (speech has
    times) or a product's text."""
    if hit.boxes:
        return "written"
    return "said" if hit.t_start is not None else "text"


def what(hit: Hit) -> str:
    if hit.text:
        return f'{how(hit)}: "{hit.text[:60]}{"..." if len(hit.text) > 60 else ""}"'
    if hit.kind == "video":
        return "seen (keyframe)"
    return f"{hit.width}x{hit.height}" if hit.width else ""


PATH_MIN = 24  # the path column never gets narrower than this
OTHER_COLUMNS = 60  # rank, id, score, kind, when and a short "what", with the gaps between columns


def short_path(path: str, width: int) -> str:
    """`path` in at most `width` characters, cut in the middle: the file name stays whole where it fits
    (a table at 80 columns, what a pipe gets, used to show "s..." for every hit)."""
    if len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    if len(name) + 2 > width:
        return "…" + path[-(width - 1) :]
    return f"{head[: width - len(name) - 2]}…{sep}{name}"


def print_hits(
    out: Console, hits: Sequence[Hit], as_json: bool = False, show_all: bool = False, paths: bool = False
) -> None:
    """The good matches (search/query/relevance.py), or all of them with `show_all`: as a table that says
    how many weaker ones it leaves out, as JSON, or as bare paths, one per line, for pipes."""
    shown = list(hits) if show_all else [h for h in hits if not h.weak]
    if as_json:
        out.print_json(json.dumps([h.to_dict() for h in shown]))
    elif paths:
        for h in shown:
            out.print(h.uri, highlight=False, markup=False, soft_wrap=True)
    else:
        out.print(table(shown, out.width) if shown else "no good match" if hits else "no hits")
        weaker = sum(h.weak for h in hits)
        if weaker and not show_all:
            out.print(f"{weaker} weaker match{'es' if weaker > 1 else ''} left out (--all shows them)")


def table(hits: Sequence[Hit], columns: int) -> Table:
    """Weak hits dimmed; scores under 0 (weak by definition) shown as 0."""
    width = max(PATH_MIN, columns - OTHER_COLUMNS)
    out = Table("#", "id", "score", "kind", "path", "when", "what", box=None)
    out.columns[4].no_wrap = True
    for rank, h in enumerate(hits, 1):
        cells = (
            str(h.item_id),
            f"{max(h.score, 0.0):.3f}",
            h.kind,
            short_path(h.uri, width),
            where(h),
            what(h),
        )
        out.add_row(str(rank), *cells, style="dim" if h.weak else None)
    return out
