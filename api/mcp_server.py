"""The index over the Model Context Protocol, for LLM agents (`mmsearch mcp`, the `[mcp]` extra).

Tools search by words or by a picture, find moments in videos and recordings, find more like an item,
read an item with what is said around a moment, tag it zero-shot, and answer a question citing hits;
resources describe the index and its filter language. Hits come back as JSON text, each followed by a
small JPEG thumbnail as MCP image content, so an agent sees the pictures it found. Built on the official
SDK's MCPServer; stdio by default, streamable HTTP with `--http`. Read-only, unless admin keys are
configured: then an `index` tool indexes the server's index roots, a `name_person` tool names the
people found in faces and a `teach_concept` tool teaches a concept by examples, for admin keys only
(over stdio, the one who started it is the admin).

Every search is one SearchRequest to Engine.search, as from HTTP and the command line: the same limits
(search.max_k, search.max_picture_bytes), the same dates and places understood, the same hits in the
same public shape (search/query/result.py). A picture given by path must lie under the folder the
indexed files share (an agent cannot make the server read anything else). Errors are tool errors with
the CLI's plain messages.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from mmsearch import Engine, MediaError, MediaTooLargeError, MMSearchError, Settings
from mmsearch.answer.answerer import Answer, Answerer
from mmsearch.api.faces import FaceBlur, decode_side, shrunk, veiled
from mmsearch.api.index_runs import IndexRunner
from mmsearch.encode.images import is_raw
from mmsearch.hits import Hit
from mmsearch.query.filters import BUILT_IN, example
from mmsearch.query.request import Concept, Filters, Kind, Picture, SearchRequest, Term
from mmsearch.query.result import SearchResult
from mmsearch.user_files import megabytes, read_file

THUMBNAIL_PX = 160  # enough to tell pictures apart, small enough for an agent's context
Content = list[TextContent | ImageContent]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
K = Annotated[int, Field(description="how many hits, 1 to the server's search.max_k")]
Where = Annotated[
    str | None,
    Field(description="a filter, e.g. `kind = video and duration > 60` (resource mmsearch://filters)"),
]
FILTER_GRAMMAR = """\
expr       := term ("or" term)*
term       := factor ("and" factor)*
factor     := "not" factor | "(" expr ")" | comparison
comparison := field op value | field ["not"] "in" "[" value, ... "]"
op         := = | != | < | <= | > | >= | ~ (contains, any case) | ^= (starts with)
value      := 12 | -3.5 | "text" | 'text' | 2024-05-01 | true | false | bare_word
"""


def build(engine: Engine, settings: Settings) -> MCPServer:
    """The MCP server over an open engine."""
    server = MCPServer(
        "mmsearch",
        instructions=(
            "Search a collection of photos, videos and recordings by what is seen and what is said. "
            "Hits name the file, the moment (seconds) and what was said there; each is followed by a "
            "thumbnail. Only good matches are returned unless show_all is true."
        ),
    )
    api = settings.api
    limit = settings.search.max_picture_bytes
    faces = FaceBlur() if api.blur_faces else None

    def run(work):
        try:
            return work()
        except MMSearchError as exc:
            raise ToolError(str(exc)) from None

    def picture(image_path: str | None, image_base64: str | None) -> Picture | None:
        if image_path and image_base64:
            raise ToolError("give image_path or image_base64, not both")
        if image_path:
            return Picture(_read_under(Path(image_path), engine.common_root(), limit), is_raw(image_path))
        return Picture.from_base64(image_base64, limit) if image_base64 else None

    def reply(result: SearchResult, safe: bool = True) -> Content:
        """The result's public shape: its summary, then each hit followed by its thumbnail."""
        summary = result.public()
        out: Content = [_text(summary | {"hits": len(result.hits)})]
        for h, shown in zip(result.hits, summary["hits"], strict=True):
            out += [_text(shown), *_picture_content(engine, h, faces, safe)]
        return out

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def search(
        text: Annotated[str | None, Field(description="what to look for, in words")] = None,
        image_path: Annotated[
            str | None, Field(description="a picture on the server, under the indexed folder")
        ] = None,
        image_base64: Annotated[
            str | None, Field(description="a picture's bytes, base64 (JPEG, PNG, WebP, ...)")
        ] = None,
        k: K = 10,
        kind: Annotated[Kind | None, Field(description="only items of this kind")] = None,
        where: Where = None,
        path_prefix: Annotated[
            str | None, Field(description="only files whose path starts with this (relative: under the root)")
        ] = None,
        min_score: Annotated[float | None, Field(description="drop hits scoring lower")] = None,
        sort: Annotated[str | None, Field(description="by a field, not relevance: -taken_at, price")] = None,
        literal: Annotated[bool, Field(description="no date or place in the words becomes a filter")] = False,
        show_all: Annotated[bool, Field(description="also the weaker matches, marked weak")] = False,
        concept: Annotated[
            str | None, Field(description="a concept taught by examples (the concepts tool): its items")
        ] = None,
        liked: Annotated[
            list[int] | None,
            Field(description="feedback: items (ids) that are right; the query moves to them"),
        ] = None,
        disliked: Annotated[
            list[int] | None, Field(description="feedback: items that are wrong, not shown again")
        ] = None,
        boost: Annotated[str | None, Field(description="a concept's name: its items first")] = None,
        diverse: Annotated[
            float | None, Field(description="spread the hits: relevance's weight against novelty (0.7)")
        ] = None,
        every_shot: Annotated[
            bool, Field(description="every shot of a stack, not one hit per stack (see `more`)")
        ] = False,
        safe: Annotated[
            bool, Field(description="false: also what safe search flagged, its thumbnails unblurred")
        ] = True,
    ) -> Content:
        """Search the collection by words (pictures and speech in one ranking), by a picture, by a concept,
        or these composed ("this picture, but in red"). A date or a city in the words becomes a filter
        (see `understood`). Again with feedback: `liked` and `disliked` hits. Hits: uri, kind, score, the
        best moment (source: seen, said or written) and its thumbnail."""

        def work():
            query = picture(image_path, image_base64)
            wanted = (query, Concept(concept) if concept else None, text)
            terms = tuple(Term(t) for t in wanted if t is not None)
            if not terms:
                raise ToolError("give text, image_path, image_base64 or concept")
            filters = Filters(kind=kind, path_prefix=path_prefix, min_score=min_score, where=where)
            options = {
                "sort": sort,
                "literal": literal,
                "show_all": show_all,
                "liked": tuple(liked or ()),
                "disliked": tuple(disliked or ()),
                "boost": boost,
                "diverse": diverse,
                "every_shot": every_shot,
                "safe": safe,
            }
            return reply(engine.search(SearchRequest(terms, k, filters, **options)), safe)

        return run(work)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def search_moments(
        text: Annotated[str, Field(description="what is seen or said, in words")],
        k: K = 10,
        where: Where = None,
        show_all: Annotated[bool, Field(description="also the weaker matches, marked weak")] = False,
    ) -> Content:
        """The moments in videos and recordings where something is seen or said: each hit's t_start and
        t_end (seconds) and what was said there."""

        def work():
            moving = "kind in [video, audio]"
            filters = Filters(where=f"({where}) and {moving}" if where else moving)
            return reply(engine.search(SearchRequest.words(text, k=k, filters=filters, show_all=show_all)))

        return run(work)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def similar(
        item_id: Annotated[int, Field(ge=1, description="an indexed item's id (from a hit)")],
        k: K = 10,
        where: Where = None,
    ) -> Content:
        """More pictures like an indexed item (its pictures' mean); the item itself comes first."""
        return run(lambda: reply(engine.search(SearchRequest((Term(item_id),), k, Filters(where=where)))))

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def get_item(
        item_id: Annotated[int, Field(ge=1, description="an indexed item's id (from a hit)")],
    ) -> str:
        """An item's metadata, fields, tags and what is said in it, line by line with times."""

        def work():
            item = engine.item(item_id)
            said = [
                {"t_start": s.t_start, "t_end": s.t_end, "text": s.text} for s in engine.transcript(item_id)
            ]
            tags = [{"label": label, "score": score} for label, score, _ in engine.tags(item_id)]
            return json.dumps(
                {
                    "id": item.id,
                    "uri": item.uri,
                    "kind": item.kind,
                    "status": item.status,
                    "error": item.error,
                    "width": item.width,
                    "height": item.height,
                    "meta": item.meta,
                    "fields": item.fields,
                    "tags": tags,
                    "transcript": said,
                },
                default=str,
            )

        return run(work)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def classify(
        item_id: Annotated[int, Field(ge=1, description="an indexed item's id")],
        labels: Annotated[
            list[str], Field(min_length=2, max_length=100, description="the labels to choose from")
        ],
        top: Annotated[int, Field(ge=1, le=20)] = 3,
    ) -> str:
        """Zero-shot labels for an item's pictures: each label's probability, best first."""

        def work():
            best = engine.classify(item_id, labels, top=top)
            return json.dumps([{"label": label, "score": round(float(p), 4)} for label, p in best])

        return run(work)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def people(
        everyone: Annotated[bool, Field(description="also hidden people and unnamed lone faces")] = False,
    ) -> str:
        """The people found in the index's faces, most faces first: id, name, faces, files. A name in a
        search's words, or `person = "Name"` in its where, keeps to that person's pictures."""
        return run(lambda: json.dumps([vars(p) for p in engine.people.listed(everyone)]))

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def concepts(
        name: Annotated[
            str | None, Field(description="a concept: the items it is least sure of, to ask about")
        ] = None,
        n: Annotated[int, Field(ge=1, le=100, description="how many of those items")] = 8,
    ) -> str:
        """The concepts taught by examples: name, items held, examples. With a name: the items that
        concept is least sure of (id, uri, probability), what to ask the user about next. A concept in
        search's `where` (`concept = "my dog"`), `boost` or `concept` uses it."""

        def work():
            if name is None:
                return json.dumps([vars(c) for c in engine.concepts.listed()], default=str)
            unsure = engine.to_label(name, n)
            return json.dumps(
                [{"item_id": i, "uri": engine.item(i).uri, "probability": p} for i, p in unsure]
            )

        return run(work)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def stacks(
        stack: Annotated[int | None, Field(ge=1, description="a stack's number: its shots")] = None,
    ) -> str:
        """The stacks of shots of one moment, largest first (number, best shot, shots), or one stack's
        shots, best first. A search shows each stack as one hit with `stack` and `more`; `stack = 12` in
        its where keeps to one."""

        def work():
            chosen = [engine.stacks.stack(stack)] if stack is not None else engine.stacks.listed()
            return json.dumps([vars(s) for s in chosen])

        return run(work)

    answerer = Answerer(engine, settings.answer)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def ask(
        question: Annotated[str, Field(min_length=1, max_length=1000, description="in plain language")],
        ctx: Context,
        where: Where = None,
    ) -> Content:
        """A vision-language model's answer from the best hits, citing them as [n]; the words arrive as
        progress notifications while it writes. Says why when no answer model is set up."""
        if answerer.why_not:
            raise ToolError(answerer.why_not)
        try:
            stream = await anyio.to_thread.run_sync(
                lambda: iter(answerer.stream(question, Filters(where=where)))
            )
            written = 0
            while (piece := await anyio.to_thread.run_sync(next, stream, None)) is not None:
                if isinstance(piece, Answer):
                    pictures = [c for e in piece.citations for c in _picture_content(engine, e.hit, faces)]
                    return [_text(_answer_json(piece)), *pictures]
                written += len(piece)
                await ctx.report_progress(written, message=piece)
        except MMSearchError as exc:
            raise ToolError(str(exc)) from None
        raise ToolError("the answer ended without its citations")

    if api.admin_keys:  # then index too, for admins
        runner = IndexRunner(engine, settings)
        writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

        @server.tool(annotations=writes, structured_output=False)
        async def index(
            ctx: Context,
            root: Annotated[
                str | None, Field(description="one of the server's index roots (default: the first)")
            ] = None,
            prune: Annotated[bool, Field(description="also drop files deleted since the last run")] = False,
        ) -> Content:
            """Index new and changed files in one of the server's index roots (api.index_roots); files done
            arrive as progress notifications. Needs an admin key."""
            if not _admin(ctx):
                raise ToolError("indexing needs an admin key")
            try:
                run = runner.start(root, prune)
            except MMSearchError as exc:
                raise ToolError(str(exc)) from None
            while run.state in ("running", "cancelling"):
                await ctx.report_progress(run.done, run.total)
                await anyio.sleep(0.25)
            return [_text(run.to_dict())]

        @server.tool(annotations=writes, structured_output=False)
        def name_person(
            ctx: Context,
            person: Annotated[int, Field(ge=1, description="a person's number (the people tool)")],
            name: Annotated[str, Field(min_length=1, max_length=256, description="their name")],
        ) -> str:
            """Name a person found in the faces (a name another person has merges the two); then their
            name in a search's words keeps to their pictures. Needs an admin key."""
            if not _admin(ctx):
                raise ToolError("naming people needs an admin key")
            run(lambda: engine.people.name(person, name))
            return json.dumps({"person": person, "name": name})

        @server.tool(annotations=writes, structured_output=False)
        def teach_concept(
            ctx: Context,
            name: Annotated[str, Field(min_length=1, max_length=256, description="e.g. 'my dog'")],
            liked: Annotated[list[int], Field(description="items (ids) that are it")],
            disliked: Annotated[list[int] | None, Field(description="items that are not it")] = None,
        ) -> str:
            """Teach a concept examples, beside those it was taught; every item it holds is tagged, and
            new files are as they are indexed. Needs an admin key."""
            if not _admin(ctx):
                raise ToolError("teaching concepts needs an admin key")
            return json.dumps(vars(run(lambda: engine.teach(name, liked, disliked or []))), default=str)

    @server.resource("mmsearch://info", mime_type="application/json")
    def info() -> str:
        """The index: its folder, model, and how many items, segments and vectors it holds."""
        return json.dumps(engine.info(), default=str)

    @server.resource("mmsearch://filters", mime_type="text/plain")
    def filters() -> str:
        """The filter language (the `where` of every tool), the fields this index has, and an example."""
        fields = engine.fields()
        kinds = ", ".join(f"{n} ({'number' if isinstance(v, float) else 'text'})" for n, v in fields.items())
        return (
            f"{FILTER_GRAMMAR}\nBuilt-in fields: {', '.join(BUILT_IN)}\n"
            f"This index's fields: {kinds or 'none'}\nExample: {example(fields)}\n"
        )

    return server


def _admin(ctx: Context) -> bool:
    """An admin key's call, or stdio's (the one who started the server owns it)."""
    request = ctx.request_context.request
    return request is None or request.scope.get("state", {}).get("role") == "admin"


def _text(data: object) -> TextContent:
    return TextContent(type="text", text=json.dumps(data, default=str))


def _answer_json(answer: Answer) -> dict:
    return {
        "answer": answer.text,
        "answered": answer.answered,
        "citations": [{"number": e.number, **e.hit.public()} for e in answer.citations],
        "unknown_citations": answer.unknown_citations,
    }


def _picture_content(engine: Engine, h: Hit, faces: FaceBlur | None, safe: bool = True) -> list[ImageContent]:
    thumbnail = _thumbnail(engine, h, faces, safe)
    if thumbnail is None:
        return []
    return [
        ImageContent(type="image", data=base64.b64encode(thumbnail).decode("ascii"), mime_type="image/jpeg")
    ]


def _thumbnail(engine: Engine, h: Hit, faces: FaceBlur | None, safe: bool = True) -> bytes | None:
    """The hit's keyframe, or the picture itself, as a small JPEG, faces blurred when `faces` is given,
    all of it where safe search flagged it (unless not `safe`); None for a recording."""
    try:
        image = engine.hit_picture(h, decode_side(THUMBNAIL_PX, faces))
        if image is None:
            return None
        image = shrunk(image, THUMBNAIL_PX, faces)
        image = veiled(image) if safe and engine.flagged(h.item_id) else image
        out = io.BytesIO()
        image.save(out, "JPEG", quality=80)
        return out.getvalue()
    except MMSearchError:
        return None  # the file changed or went since it was indexed: the hit still stands


def _read_under(path: Path, root: str, limit: int) -> bytes:
    """A picture's bytes, only from under the indexed folder and at most `limit` bytes."""
    real = path.expanduser().resolve()
    if not root or not real.is_relative_to(Path(root).resolve()):
        raise ToolError(
            "image_path must be a file under the indexed folder; send other pictures as image_base64"
        )
    if not real.is_file():
        raise ToolError(f"no file at {path}")
    try:
        return read_file(real, limit)
    except MediaTooLargeError:
        raise ToolError(f"the picture is over the limit of {megabytes(limit)}") from None
    except MediaError as exc:
        raise ToolError(f"cannot read {path}: {exc}") from None
