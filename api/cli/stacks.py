"""`mmsearch stacks ...`: the shots of one moment (a burst, a few tries) and copies of one picture, kept as
files arrive once the index keeps stacks (`mmsearch stacks start`, or `mmsearch index --stacks`); search
shows each as one hit, its best shot, with +N more (`--every-shot` shows them all)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mmsearch.api.cli.common import IndexDir, err, open_engine, out, settings_from

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, help=__doc__)


@app.command("start")
def start(index_dir: IndexDir = None) -> None:
    """Keep stacks from now on, and stack the pictures indexed so far."""
    n = open_engine(settings_from(index_dir)).keep_stacks()
    err.print(f"{n} stacks; new files are stacked as they are indexed", markup=False, highlight=False)


@app.command("list")
def list_stacks(
    index_dir: IndexDir = None,
    limit: Annotated[int, typer.Option("-n", help="Stacks at most")] = 100,
) -> None:
    """The stacks, largest first: number, shots, best shot."""
    engine = open_engine(settings_from(index_dir))
    stacks = engine.stacks.listed(limit)
    if not stacks:
        kept = engine.stacks.keeping()
        out.print("no stacks yet" if kept else "this index keeps no stacks: mmsearch stacks start")
        return
    table = Table("stack", "shots", "best shot", box=None)
    for s in stacks:
        best = engine.item(s.best_item).uri + (" (picked)" if s.picked else "")
        table.add_row(str(s.id), str(len(s.members)), best)
    out.print(table)


@app.command("show")
def show(
    stack: Annotated[int, typer.Argument(help="The stack's number")], index_dir: IndexDir = None
) -> None:
    """A stack's shots, best first (then by measured look)."""
    engine = open_engine(settings_from(index_dir))
    table = Table("id", "path", box=None)
    for i in engine.stacks.stack(stack).members:
        table.add_row(str(i), engine.item(i).uri)
    out.print(table)


@app.command("best")
def pick(
    stack: Annotated[int, typer.Argument(help="The stack's number")],
    item: Annotated[int, typer.Argument(help="The shot (item id) to show for it")],
    index_dir: IndexDir = None,
) -> None:
    """Pick a stack's best shot; it stays so as files arrive."""
    open_engine(settings_from(index_dir)).stacks.pick(stack, item)
    err.print(f"stack {stack}: item {item} is its best shot", markup=False, highlight=False)
