"""How the command line prints hits: a table on a terminal, whole tab-separated lines into a pipe, or
JSON. Shared by the full command line (api/cli/) and the one-shot search (search/query/quick.py), so
both print the same thing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from mmsearch.hits import Hit, clock
from mmsearch.query.result import SearchResult


def where(hit: Hit) -> str:
    return f"{clock(hit.t_start)}-{clock(hit.t_end)}" if hit.t_start is not None else ""


def what(hit: Hit, chars: int | None = 60) -> str:
    """What matched, in words: what is said or written (cut to `chars`; None: all of it, on one line)."""
    if hit.text:
        text = " ".join(hit.text.split())
        cut = chars is not None and len(text) > chars
        return f'{hit.source}: "{text[:chars] if cut else text}{"..." if cut else ""}"'
    if hit.kind == "video":
        return "seen (keyframe)"
    size = f"{hit.width}x{hit.height}" if hit.width else ""
    return f"{size} +{hit.more} more (stack {hit.stack})" if hit.more else size


HEADER = ("#", "id", "score", "kind", "path", "when", "what")
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


def print_result(
    out: Console, result: SearchResult, as_json: bool = False, paths: bool = False, err: Console | None = None
) -> None:
    """A search's result as JSON (its public shape, search/query/result.py), as bare paths, as whole
    tab-separated lines into a pipe, or as a table that says how many weaker matches it leaves out; what
    was understood in the words goes to `err` (stdout stays clean for JSON and --paths)."""
    if result.understood is not None and err is not None:
        err.print(result.understood.said(), markup=False, highlight=False)
    if as_json:
        out.print_json(json.dumps(result.public()))
    elif paths:
        for h in result.hits:
            out.print(h.uri, highlight=False, markup=False, soft_wrap=True)
    elif result.hits and not out.is_terminal:  # a pipe: every cell whole, one line per hit, no notes
        rows = [HEADER, *(cells(rank, h) for rank, h in enumerate(result.hits, 1))]
        out.file.write("".join("\t".join(row) + "\n" for row in rows))  # as they are: rich expands tabs
    else:
        hits = result.hits
        if hits and all(h.weak for h in hits):
            out.print("no good match; the nearest, marked weak:")
        out.print(table(hits, out.width) if hits else "no hits")
        left_out = result.weaker - sum(h.weak for h in hits)
        if left_out:
            out.print(
                f"{left_out} weaker match{'es' if left_out > 1 else ''} left out (--all shows them)",
                highlight=False,
            )


def cells(rank: int, h: Hit, path_width: int | None = None, text_chars: int | None = None) -> tuple:
    """A hit's row: its real score, marked weak in words (--all shows weak ones), the path cut in the
    middle to `path_width` and the text to `text_chars` (None: whole)."""
    path = h.uri if path_width is None else short_path(h.uri, path_width)
    score = f"{h.score:.3f}{' weak' if h.weak else ''}"
    return str(rank), str(h.item_id), score, h.kind, path, where(h), what(h, text_chars)


def table(hits: Sequence[Hit], columns: int) -> Table:
    """For a terminal `columns` wide: weak hits dimmed too, paths cut in the middle."""
    width = max(PATH_MIN, columns - OTHER_COLUMNS)
    out = Table(*HEADER, box=None)
    out.columns[4].no_wrap = True
    for rank, h in enumerate(hits, 1):
        out.add_row(*cells(rank, h, width, 60), style="dim" if h.weak else None)
    return out
