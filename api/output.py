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


def print_hits(out: Console, hits: Sequence[Hit], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps([h.to_dict() for h in hits]))
        return
    table = Table("#", "score", "kind", "path", "when", "what", box=None)
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), f"{h.score:.3f}", h.kind, h.uri, where(h), what(h))
    out.print(table if hits else "no hits")
