"""How the command line prints hits: a table, or JSON. Shared by the full command line (api/cli/) and
the one-shot search (search/query/quick.py), so both print the same thing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from mmsearch.hits import Hit, clock
from mmsearch.query.result import SearchResult


def where(hit: Hit) -> str:
    return f"{clock(hit.t_start)}-{clock(hit.t_end)}" if hit.t_start is not None else ""


def what(hit: Hit) -> str:
    if hit.text:
        return f'{hit.source}: "{hit.text[:60]}{"..." if len(hit.text) > 60 else ""}"'
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


def print_result(out: Console, result: SearchResult, as_json: bool = False, paths: bool = False) -> None:
    """A search's result as JSON (its public shape, search/query/result.py), as bare paths, one per line,
    for pipes, or as a table that says how many weaker matches it leaves out."""
    if as_json:
        out.print_json(json.dumps(result.public()))
    elif paths:
        for h in result.hits:
            out.print(h.uri, highlight=False, markup=False, soft_wrap=True)
    else:
        shown = result.hits
        out.print(table(shown, out.width) if shown else "no good match" if result.weaker else "no hits")
        left_out = result.weaker - sum(h.weak for h in shown)
        if left_out:
            out.print(f"{left_out} weaker match{'es' if left_out > 1 else ''} left out (--all shows them)")


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
