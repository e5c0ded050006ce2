"""`mmsearch concept ...`: concepts taught by examples ("my dog", "our product shots"), listed, taught more,
asked what to mark next, forgotten. Then `concept = "my dog"` filters, `--boost "my dog"` ranks its items
first and `--concept "my dog"` looks for them (mmsearch search)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mmsearch.api.cli.common import IndexDir, err, open_engine, out, settings_from

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, help=__doc__)


@app.command("teach")
def teach(
    name: Annotated[str, typer.Argument(help="The concept's name, e.g. 'my dog'")],
    liked: Annotated[
        list[int] | None, typer.Option("--yes", help="An item (id) that is it (repeatable)")
    ] = None,
    disliked: Annotated[
        list[int] | None, typer.Option("--no", help="An item that is not it (repeatable)")
    ] = None,
    index_dir: IndexDir = None,
) -> None:
    """Teach a concept examples, beside those it was taught before; every item it holds is tagged."""
    c = open_engine(settings_from(index_dir)).teach(name, liked or [], disliked or [])
    err.print(
        f"{c.name!r}: {c.items} items, taught {c.liked} yes and {c.disliked} no",
        markup=False,
        highlight=False,
    )


@app.command("list")
def list_concepts(index_dir: IndexDir = None) -> None:
    """The concepts taught: their items and examples."""
    concepts = open_engine(settings_from(index_dir)).concepts.listed()
    if not concepts:
        out.print('no concepts yet: mmsearch concept teach "NAME" --yes ID ...')
        return
    table = Table("name", "items", "yes", "no", "taught", box=None)
    for c in concepts:
        table.add_row(c.name, str(c.items), str(c.liked), str(c.disliked), f"{c.updated:%Y-%m-%d %H:%M}")
    out.print(table)


@app.command("next")
def to_label(
    name: Annotated[str, typer.Argument(help="The concept's name")],
    n: Annotated[int, typer.Option("-n", help="How many items, 1 to 100")] = 8,
    index_dir: IndexDir = None,
) -> None:
    """The items the concept is least sure of: marking them (teach --yes/--no) teaches it the most."""
    engine = open_engine(settings_from(index_dir))
    table = Table("id", "probability", "path", box=None)
    for item_id, p in engine.to_label(name, n):
        table.add_row(str(item_id), f"{p:.2f}", engine.item(item_id).uri)
    out.print(table)


@app.command("forget")
def forget(
    name: Annotated[str, typer.Argument(help="The concept's name")], index_dir: IndexDir = None
) -> None:
    """Delete a concept, its examples and its tags."""
    open_engine(settings_from(index_dir)).concepts.forget(name)
    err.print(f"{name!r} forgotten", markup=False, highlight=False)
