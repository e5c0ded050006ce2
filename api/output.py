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


def what(hit: Hit) -> str:
    if hit.text:
        return f'said: "{hit.text[:60]}{"..." if len(hit.text) > 60 else ""}"'
    if hit.kind == "video":
        return "seen (keyframe)"
    return f"{hit.width}x{hit.height}" if hit.width else ""


PATH_MIN = 24  # the path column never gets narrower than this
OTHER_COLUMNS = 52  # rank, score, kind, when and a short "what", with the gaps between columns


def short_path(path: str, width: int) -> str:
    """`path` in at most `width` characters, cut in the middle: the file name stays whole where it fits
    (a table at 80 columns, what a pipe gets, used to show "s..." for every hit)."""
    if len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    if len(name) + 2 > width:
        return "…" + path[-(width - 1) :]
    return f"{head[: width - len(name) - 2]}…{sep}{name}"


def print_hits(out: Console, hits: Sequence[Hit], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps([h.to_dict() for h in hits]))
        return
    width = max(PATH_MIN, out.width - OTHER_COLUMNS)
    table = Table("#", "score", "kind", "path", "when", "what", box=None)
    table.columns[3].no_wrap = True
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), f"{h.score:.3f}", h.kind, short_path(h.uri, width), where(h), what(h))
    out.print(table if hits else "no hits")
