"""The results table at 80 columns (what a pipe gets): every file name readable, the path cut in the
middle, nothing wrapped; JSON unchanged."""

from __future__ import annotations

import io
import json

from rich.console import Console

from mmsearch.api.output import print_hits, short_path
from mmsearch.hits import Hit

DEEP = "/home/someone/Pictures/2024/holidays/italy/rome/day-3-the-forum-and-the-palatine-hill"


def hit(rank: int, uri: str, **more) -> Hit:
    return Hit(rank, rank, uri, "image", score=0.5, similarity=0.5, space="image", **more)


def printed(hits: list[Hit], width: int = 80, as_json: bool = False) -> str:
    out = io.StringIO()
    print_hits(Console(file=out, width=width, force_terminal=False), hits, as_json)
    return out.getvalue()


def test_short_path_keeps_the_file_name_and_cuts_the_middle():
    assert short_path("/a/b.jpg", 20) == "/a/b.jpg"
    cut = short_path(f"{DEEP}/IMG_2041.jpg", 30)
    assert len(cut) == 30 and cut.endswith("…/IMG_2041.jpg") and cut.startswith("/home/someone")
    name = "a-very-long-file-name-that-does-not-fit-anywhere.jpg"
    assert short_path(f"/x/{name}", 20) == "…" + name[-19:]


def test_the_table_keeps_every_file_name_at_80_columns():
    hits = [
        hit(1, f"{DEEP}/IMG_2041.jpg", width=4032, height=3024),
        hit(2, f"{DEEP}/IMG_2042.jpg", width=4032, height=3024),
        hit(3, "/short/cat.jpg"),
    ]
    text = printed(hits)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    for name in ("IMG_2041.jpg", "IMG_2042.jpg", "/short/cat.jpg", "4032x3024"):
        assert name in text, text
    assert json.loads(printed(hits, as_json=True))[0]["uri"] == f"{DEEP}/IMG_2041.jpg"
