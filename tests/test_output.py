"""The results table on an 80-column terminal: every file name readable, the path cut in the middle,
nothing wrapped; into a pipe, whole tab-separated lines; JSON in the public shape every door returns
(search/query/result.py)."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from rich.console import Console

from mmsearch.api.output import print_result, short_path
from mmsearch.hits import Hit
from mmsearch.query.result import SearchResult

DEEP = "/home/someone/Pictures/2024/holidays/italy/rome/day-3-the-forum-and-the-palatine-hill"


def hit(rank: int, uri: str, **more) -> Hit:
    return Hit(rank, rank, uri, "image", score=0.5, similarity=0.5, space="image", **more)


def printed(
    hits: list[Hit],
    width: int = 80,
    as_json: bool = False,
    show_all: bool = False,
    paths: bool = False,
    terminal: bool = True,
) -> str:
    out = io.StringIO()
    result = SearchResult.of("cat", 10, hits, show_all)
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    print_result(console, result, as_json, paths)
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
    assert json.loads(printed(hits, as_json=True))["hits"][0]["uri"] == f"{DEEP}/IMG_2041.jpg"


def test_weak_hits_are_left_out_and_counted():
    hits = [hit(1, "/p/cat.jpg"), hit(2, "/p/dog.jpg", weak=True), hit(3, "/p/cow.jpg", weak=True)]
    text = printed(hits)
    assert "cat.jpg" in text and "dog.jpg" not in text and "cow.jpg" not in text
    assert "2 weaker matches left out (--all shows them)" in text
    everything = printed(hits, show_all=True)
    assert all(name in everything for name in ("cat.jpg", "dog.jpg", "cow.jpg"))
    assert "left out" not in everything
    shown = json.loads(printed(hits, as_json=True))
    assert [h["uri"] for h in shown["hits"]] == ["/p/cat.jpg"] and shown["weaker"] == 2
    everything = json.loads(printed(hits, as_json=True, show_all=True))
    assert [h["weak"] for h in everything["hits"]] == [False, True, True] and everything["weaker"] == 2


def test_all_weak_says_no_good_match_and_shows_the_nearest_marked_weak():
    lines = printed([hit(1, "/p/cat.jpg", weak=True), hit(2, "/p/dog.jpg", weak=True)]).splitlines()
    assert lines[0] == "no good match; the nearest, marked weak:"
    row = next(line for line in lines if "cat.jpg" in line)
    assert "weak" in row and "dog.jpg" not in "".join(lines)
    assert lines[-1] == "1 weaker match left out (--all shows them)"
    assert printed([]).strip() == "no hits"


def test_paths_prints_bare_paths_for_pipes():
    long = f"{DEEP}/IMG_2041.jpg"  # never cut, however narrow the terminal
    hits = [hit(1, long), hit(2, "/p/with space.jpg"), hit(3, "/p/dog.jpg", weak=True)]
    assert printed(hits, width=40, paths=True).splitlines() == [long, "/p/with space.jpg"]
    assert printed(hits, paths=True, show_all=True).splitlines()[-1] == "/p/dog.jpg"


def test_into_a_pipe_every_line_is_whole_and_weak_is_said():
    said = "the keeper painted the lighthouse door red, and then\nhe painted the railings too, all of them"
    hits = [
        hit(1, f"{DEEP}/IMG_2041.jpg"),
        hit(2, "/p/talk.flac", weak=True, text=said, t_start=3.0, t_end=9.5),
    ]
    hits[1] = replace(hits[1], score=-0.071, space="text")
    lines = printed(hits, show_all=True, terminal=False).splitlines()
    assert lines[0].split("\t") == ["#", "id", "score", "kind", "path", "when", "what"]
    assert lines[1].split("\t")[:5] == ["1", "1", "0.500", "image", f"{DEEP}/IMG_2041.jpg"]
    assert lines[2].split("\t") == [
        "2",
        "2",
        "-0.071 weak",
        "image",
        "/p/talk.flac",
        "00:03-00:09",
        f'said: "{" ".join(said.split())}"',
    ]
    assert len(lines) == 3 and "left out" not in printed(hits, terminal=False)


def test_the_table_shows_the_item_id():
    text = printed([hit(7, "/p/cat.jpg")])
    header, row = text.splitlines()[:2]
    assert header.split()[:3] == ["#", "id", "score"] and row.split()[:3] == ["1", "7", "0.500"]
