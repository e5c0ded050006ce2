"""`mmsearch people ...`: the people found in an index's faces (`mmsearch index --faces`), listed, named,
merged and hidden; a face taken out of a person; all face data forgotten."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mmsearch.api.cli.common import IndexDir, err, open_engine, out, settings_from

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, help=__doc__)


@app.command("list")
def list_people(
    index_dir: IndexDir = None,
    everyone: Annotated[
        bool, typer.Option("--all", help="Also the hidden ones and those seen once, unnamed")
    ] = False,
) -> None:
    """The people in the index, most faces first: id, name, faces, files, best face."""
    people = open_engine(settings_from(index_dir)).people.listed(everyone)
    if not people:
        out.print("no people yet: index with --faces (pip install 'mmsearch[people]')")
        return
    table = Table("id", "name", "faces", "files", "best face", box=None)
    for p in people:
        name = (p.name or "") + (" (hidden)" if p.hidden else "")
        table.add_row(str(p.id), name, str(p.faces), str(p.items), str(p.best_face))
    out.print(table)


@app.command("name")
def name_person(
    person: Annotated[int, typer.Argument(help="The person's id (mmsearch people list)")],
    name: Annotated[str, typer.Argument(help="Their name; a name another person has merges the two")],
    index_dir: IndexDir = None,
) -> None:
    """Name a person: then `person = "NAME"` filters, and the name in a query's words too."""
    open_engine(settings_from(index_dir)).people.name(person, name)
    err.print(f"person {person} is now {name!r}", markup=False, highlight=False)


@app.command("merge")
def merge_people(
    into: Annotated[int, typer.Argument(help="The person who stays")],
    other: Annotated[int, typer.Argument(help="The person whose faces join them")],
    index_dir: IndexDir = None,
) -> None:
    """Two people are one: OTHER's faces become INTO's."""
    open_engine(settings_from(index_dir)).people.merge(into, other)
    err.print(f"person {other} merged into {into}", markup=False, highlight=False)


@app.command("hide")
def hide_person(
    person: Annotated[int, typer.Argument(help="The person's id")],
    show: Annotated[bool, typer.Option("--show", help="Show them again")] = False,
    index_dir: IndexDir = None,
) -> None:
    """Leave a person out of the list (their faces stay)."""
    open_engine(settings_from(index_dir)).people.hide(person, hidden=not show)


@app.command("not")
def move_face_out(
    face: Annotated[int, typer.Argument(help="The face's id")],
    index_dir: IndexDir = None,
) -> None:
    """This face is not that person: it leaves them for a person of its own and never joins them again."""
    person = open_engine(settings_from(index_dir)).people.move_out(face)
    err.print(f"face {face} is now person {person}", markup=False, highlight=False)


@app.command("forget")
def forget_faces(
    index_dir: IndexDir = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it: every face and person is deleted")] = False,
) -> None:
    """Delete all face data of the index: every face, person and name (the files and their vectors stay)."""
    if not yes:
        raise typer.BadParameter("this deletes every face and person: add --yes")
    n = open_engine(settings_from(index_dir)).people.forget()
    err.print(f"{n} faces forgotten", markup=False, highlight=False)
