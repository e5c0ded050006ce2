"""The `mmsearch` command line, one module per group of commands: index.py, search.py (search, ask),
admin.py (classify, dedup, info, reindex, serve, mcp), evaluate.py (eval), train.py (synth, train),
people.py (`mmsearch people ...`), concept.py (`mmsearch concept ...`), stacks.py (`mmsearch stacks
...`) and bench.py (`mmsearch bench ...`); common.py holds the consoles, options and settings they
share. The table below is the command list in the order `mmsearch --help` shows it.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.markup import escape

from mmsearch.api.cli import admin, bench, concept, evaluate, index, people, search, stacks, train
from mmsearch.api.cli.common import err
from mmsearch.errors import MMSearchError

HELP = "`mmsearch`: index, search, inspect, serve, train and benchmark from the command line."
COMMANDS = (
    index.index,
    search.search,
    search.ask,
    admin.classify,
    admin.dedup,
    admin.info,
    admin.reindex,
    admin.serve,
    admin.mcp,
    evaluate.evaluate,
    train.synth,
    train.train,
)

NAMES = {"evaluate": "eval"}


def _flags_without_type(display_type_rich):
    """typer 0.29 labels every yes/no flag `<bool>` in --help (`--json <bool>`): a flag takes no value,
    so it gets no type label."""

    def display(self, ctx):
        return None if self.is_flag else display_type_rich(self, ctx)

    return display


typer.core.TyperOption.display_type_rich = _flags_without_type(
    typer.core.TyperOption.display_type_rich
)  # a command's name where it is not its function's

app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP, rich_markup_mode=None)
for command in COMMANDS:
    app.command(NAMES.get(command.__name__))(command)
app.add_typer(people.app, name="people")
app.add_typer(concept.app, name="concept")
app.add_typer(stacks.app, name="stacks")
app.add_typer(bench.app, name="bench")


def main() -> None:
    # Decode threads share the cores with torch's OpenMP workers; spinning workers would take the
    # decoders' time (pipeline/model-only 0.85 -> 0.90 on 2 cores). Must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except MMSearchError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)  # one line, whole, in a log too
        sys.exit(2)
