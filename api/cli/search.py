"""`mmsearch search` (by text, picture or both composed) and `mmsearch ask` (a cited answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mmsearch.api.cli.common import (
    Device,
    IndexDir,
    Model,
    Pretrained,
    err,
    open_engine,
    out,
    settings_from,
)
from mmsearch.api.output import print_result, what, where


def search(
    query: Annotated[str | None, typer.Argument(help="Text query")] = None,
    image: Annotated[Path | None, typer.Option("--image", exists=True, help="Image query file")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of hits, 1 to search.max_k (1000)")] = 10,
    min_score: Annotated[float | None, typer.Option(help="Drop hits scoring below this")] = None,
    kind: Annotated[str | None, typer.Option(help="Only items of this kind (image, video, audio)")] = None,
    path_prefix: Annotated[str | None, typer.Option(help="Only files whose path starts with this")] = None,
    where: Annotated[
        str | None, typer.Option(help="Filter, e.g. 'category = \"shoes\" and price < 50' (docs/filters.md)")
    ] = None,
    collapse: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Keep one of pictures at least this alike")
    ] = None,
    weight: Annotated[float, typer.Option(help="Weight of the text next to --image or --like")] = 1.0,
    negative: Annotated[
        list[str] | None, typer.Option("--not", help="Push down what matches this text (repeatable)")
    ] = None,
    not_weight: Annotated[float, typer.Option(help="Weight of each --not term")] = 0.5,
    like: Annotated[int | None, typer.Option(help="More like this indexed item (its id)")] = None,
    concept: Annotated[
        str | None, typer.Option(help="Look for a concept's items (mmsearch concept teach), or compose it")
    ] = None,
    liked: Annotated[
        list[int] | None, typer.Option("--yes", help="Feedback: this hit (item id) is right (repeatable)")
    ] = None,
    disliked: Annotated[
        list[int] | None, typer.Option("--no", help="Feedback: this hit is wrong, not shown again")
    ] = None,
    boost: Annotated[str | None, typer.Option(help="A concept's items first")] = None,
    diverse: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Spread the hits: relevance's weight against novelty (0.7)"),
    ] = None,
    every_shot: Annotated[
        bool, typer.Option("--every-shot", help="Every shot of a stack, not one hit per stack")
    ] = False,
    unsafe: Annotated[
        bool, typer.Option("--unsafe", help="Also what safe search flagged at index time (explicit)")
    ] = False,
    hybrid: Annotated[
        bool, typer.Option("--hybrid", help="Also match words in titles, transcripts, fields (full text)")
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also the weaker matches, dimmed (default: good matches only)")
    ] = False,
    sort: Annotated[
        str | None,
        typer.Option(help="Order by a field, not relevance: --sort=-taken_at (newest first), price, size"),
    ] = None,
    literal: Annotated[
        bool, typer.Option("--literal", help="Search the words as typed: a date in them is not a filter")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    paths: Annotated[bool, typer.Option("--paths", help="Print only the files' paths, one per line")] = False,
    index_dir: IndexDir = None,
    model: Model = None,
    pretrained: Pretrained = None,
    device: Device = None,
) -> None:
    """Search by text, by image (--image FILE), or both composed: `--image dress.jpg "red" --weight 0.3
    --not striped`, `--like 42 "in blue"`; again with feedback on hits: `--yes 4 --no 7`."""
    from mmsearch.encode.images import is_raw
    from mmsearch.query.request import Concept, Filters, Picture, SearchRequest, Term
    from mmsearch.user_files import read_file

    s = settings_from(index_dir, model, pretrained, device=device)
    terms = []
    if image is not None:
        terms.append(Term(Picture(read_file(image, s.search.max_picture_bytes), is_raw(image))))
    if like is not None:
        terms.append(Term(like))
    if concept is not None:
        terms.append(Term(Concept(concept)))
    if query is not None:
        terms.append(Term(query, weight if terms else 1.0))
    terms += [Term(text, -not_weight) for text in negative or []]
    filters = Filters(kind, local_prefix(path_prefix), min_score, where)
    options = {
        "collapse": collapse,
        "sort": sort,
        "hybrid": hybrid,
        "literal": literal,
        "show_all": show_all,
        "liked": tuple(liked or ()),
        "disliked": tuple(disliked or ()),
        "boost": boost,
        "diverse": diverse,
        "every_shot": every_shot,
        "safe": not unsafe,
    }
    request = SearchRequest(tuple(terms), k, filters, **options)
    result = open_engine(s).search(request)
    print_result(out, result, as_json, paths, err)


def local_prefix(path_prefix: str | None) -> str | None:
    """A path prefix as the shell means it: a folder here (made absolute) when there is one; else as
    given, for the engine to put under the folder the indexed files share."""
    if path_prefix is None or not (local := Path(path_prefix).expanduser()).exists():
        return path_prefix
    return str(local.resolve()) + ("/" if path_prefix.endswith("/") else "")


def ask(
    question: Annotated[str, typer.Argument(help="A question about the collection, in plain language")],
    kind: Annotated[str | None, typer.Option(help="Only items of this kind (image, video, audio)")] = None,
    path_prefix: Annotated[str | None, typer.Option(help="Only files whose path starts with this")] = None,
    backend: Annotated[
        str | None, typer.Option(help="local, openai or anthropic [MMSEARCH_ANSWER__BACKEND]")
    ] = None,
    vlm: Annotated[
        str | None, typer.Option("--vlm", help="VLM name or folder [MMSEARCH_ANSWER__MODEL]")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL for openai/anthropic backends")] = None,
    index_dir: IndexDir = None,
) -> None:
    """Answer a question from the collection with a vision-language model, streaming, then list the
    hits it cites."""
    from pydantic import ValidationError

    from mmsearch.answer.answerer import Answer, Answerer
    from mmsearch.config import AnswerSettings
    from mmsearch.errors import ConfigError
    from mmsearch.query.request import Filters

    s = settings_from(index_dir)
    chosen = {k: v for k, v in {"backend": backend, "model": vlm, "base_url": base_url}.items() if v}
    try:
        answer_settings = AnswerSettings.model_validate({**s.answer.model_dump(), **chosen})
    except ValidationError as exc:
        raise ConfigError(f"invalid answer settings: {exc.errors()[0]['msg']}") from None
    s = s.model_copy(update={"answer": answer_settings})
    engine = open_engine(s)
    answerer = Answerer(engine, s.answer)
    filters = Filters(kind, local_prefix(path_prefix))
    result = None
    for piece in answerer.stream(question, filters):
        if isinstance(piece, Answer):
            result = piece
        else:
            out.print(piece, end="", highlight=False, markup=False)
    out.print()
    if result is None or not result.citations:
        return
    table = Table("#", "kind", "path", "when", "what", box=None, title="cited")
    for e in result.citations:
        table.add_row(f"[{e.number}]", e.hit.kind, e.hit.uri, where(e.hit), what(e.hit))
    out.print(table)
