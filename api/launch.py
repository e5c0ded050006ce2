"""The `mmsearch` command. A plain one-shot text search goes the light way (search/query/quick.py) when the
index allows it, without importing the full command line (Typer, pydantic, torch); everything else,
and every search the light way declines, runs api/cli/."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["search"] and quick_search(sys.argv[2:]):
        return
    from mmsearch.api.cli import main as full

    full()


def quick_search(args: list[str]) -> bool:
    """Answer `mmsearch search ARGS` the light way; False when it must go the full way."""
    from mmsearch.defaults import search_settings_in_env
    from mmsearch.query import quick

    query = quick.parse(args)
    if query is None or search_settings_in_env():
        return False
    result = quick.search(query)
    if result is None:
        return False
    from rich.console import Console

    from mmsearch.api.output import print_result

    print_result(Console(), result, query.as_json, query.paths, err=Console(stderr=True))
    return True


if __name__ == "__main__":
    main()
