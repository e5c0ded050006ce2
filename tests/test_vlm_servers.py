"""The server backends against a local HTTP server that speaks each wire format, streaming included.

The server answers OpenAI's `POST /v1/chat/completions` and Anthropic's `POST /v1/messages` with the event
streams the real services send, records every request, and can fail on purpose: an HTTP error, a reply
that comes too late, a stream that stalls halfway, an error event inside the stream.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from search.errors import BackendError, BackendTimeoutError, ConfigError
from search.vlm.anthropic_api import AnthropicBackend
from search.vlm.base import ImagePart, Prompt, TextPart
from search.vlm.openai_compat import OpenAICompatBackend

DELTAS = ["The red car ", "is in [1]", " and [2].", " Ünïcode ✓"]
SLOW_S = 3.0  # how long a slow or stalled server keeps the client waiting
TIMEOUT_S = 0.5


def tiny_jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


RED, BLUE = tiny_jpeg((220, 20, 20)), tiny_jpeg((20, 20, 220))
PROMPT = Prompt(
    system="Answer from the numbered evidence only; cite it as [n].",
    parts=(
        TextPart("Question: where is the red car?"),
        TextPart("[1] photos/red-car.jpg (image)"),
        ImagePart(RED),
        TextPart("[2] clips/street.mp4 at 00:12 (keyframe)"),
        ImagePart(BLUE),
    ),
    max_tokens=77,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sent_key(headers: dict[str, str]) -> str | None:
    """The API key a request carried: `Authorization: Bearer` (OpenAI; Anthropic's SDK 2.x) or `x-api-key`."""
    bearer = headers.get("authorization", "")
    return bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else headers.get("x-api-key")


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


@dataclass
class Behaviour:
    mode: str = "ok"  # ok | http500 | slow | stall | error_event
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # ends a sleeping handler early


def sse(event: str | None, data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


def openai_events(model: str, mode: str) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model}
        return sse(None, {**body, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    for i, text in enumerate(DELTAS):
        yield chunk({"content": text})
        if i == 0 and mode == "error_event":
            yield sse(None, {"error": {"message": "the model crashed", "type": "server_error"}})
    yield chunk({}, "stop")
    yield sse(None, "[DONE]")


def anthropic_events(model: str, mode: str) -> Iterator[bytes]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1},
    }
    yield sse("message_start", {"type": "message_start", "message": message})
    block = {"type": "text", "text": ""}
    yield sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
    yield sse("ping", {"type": "ping"})
    for i, text in enumerate(DELTAS):
        delta = {"type": "text_delta", "text": text}
        yield sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        if i == 0 and mode == "error_event":
            error = {"type": "overloaded_error", "message": "the model crashed"}
            yield sse("error", {"type": "error", "error": error})
    yield sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    end = {"stop_reason": "end_turn", "stop_sequence": None}
    yield sse("message_delta", {"type": "message_delta", "delta": end, "usage": {"output_tokens": 9}})
    yield sse("message_stop", {"type": "message_stop"})


ERRORS = {
    "/v1/chat/completions": {"error": {"message": "model exploded", "type": "server_error", "code": None}},
    "/v1/messages": {"type": "error", "error": {"type": "api_error", "message": "model exploded"}},
}
EVENTS: dict[str, Callable[[str, str], Iterator[bytes]]] = {
    "/v1/chat/completions": openai_events,
    "/v1/messages": anthropic_events,
}


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        behaviour: Behaviour = self.server.behaviour
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        headers = {name.lower(): value for name, value in self.headers.items()}
        behaviour.requests.append(Recorded(self.path, headers, body))
        try:
            if behaviour.mode == "slow":
                behaviour.release.wait(SLOW_S)
            if behaviour.mode == "http500" or self.path not in EVENTS:
                payload = json.dumps(ERRORS.get(self.path, {})).encode()
                self.send_response(500 if self.path in EVENTS else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()  # HTTP/1.0: the stream ends when the connection closes
            for event in EVENTS[self.path](body["model"], behaviour.mode):
                self.wfile.write(event)
                if behaviour.mode == "stall" and DELTAS[0].encode() in event:
                    behaviour.release.wait(SLOW_S)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    behaviour = Behaviour()
    httpd.behaviour = behaviour
    thread = threading.Thread(target=httpd.serve_forever, name="fake-vlm-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", behaviour
    finally:
        behaviour.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


BACKENDS: dict[str, Callable[..., OpenAICompatBackend | AnthropicBackend]] = {
    "openai": lambda url, **kw: OpenAICompatBackend("gpt-test", base_url=f"{url}/v1", **kw),
    "anthropic": lambda url, **kw: AnthropicBackend("claude-test", base_url=url, **kw),
}
both = pytest.mark.parametrize("kind", list(BACKENDS))


@pytest.fixture(autouse=True)
def no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@both
def test_streams_the_deltas_in_order(server: tuple[str, Behaviour], kind: str) -> None:
    url, behaviour = server
    backend = BACKENDS[kind](url, api_key="sk-test")
    assert backend.name == kind
    got = list(backend.stream(PROMPT, timeout_s=10))
    assert got == DELTAS
    assert "".join(got) == "".join(DELTAS)
    assert len(behaviour.requests) == 1


def test_openai_request(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    list(OpenAICompatBackend("gpt-test", base_url=f"{url}/v1", api_key="sk-secret").stream(PROMPT, 10))
    (request,) = behaviour.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret"
    body = request.body
    assert body["model"] == "gpt-test"
    assert body["max_tokens"] == 77
    assert body["stream"] is True
    system, user = body["messages"]
    assert system == {"role": "system", "content": PROMPT.system}
    assert user["role"] == "user"
    assert user["content"] == [
        {"type": "text", "text": "Question: where is the red car?"},
        {"type": "text", "text": "[1] photos/red-car.jpg (image)"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64(RED)}"}},
        {"type": "text", "text": "[2] clips/street.mp4 at 00:12 (keyframe)"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64(BLUE)}"}},
    ]
    assert base64.b64decode(user["content"][2]["image_url"]["url"].split(",", 1)[1]) == RED


def test_anthropic_request(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    list(AnthropicBackend("claude-test", base_url=url, api_key="sk-ant-secret").stream(PROMPT, 10))
    (request,) = behaviour.requests
    assert request.path == "/v1/messages"
    assert sent_key(request.headers) == "sk-ant-secret"
    assert "anthropic-version" in request.headers
    body = request.body
    assert body["model"] == "claude-test"
    assert body["max_tokens"] == 77
    assert body["stream"] is True
    assert body["system"] == PROMPT.system
    (user,) = body["messages"]
    assert user["role"] == "user"

    def image(data: bytes) -> dict[str, Any]:
        return {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(data)}}

    assert user["content"] == [
        {"type": "text", "text": "Question: where is the red car?"},
        {"type": "text", "text": "[1] photos/red-car.jpg (image)"},
        image(RED),
        {"type": "text", "text": "[2] clips/street.mp4 at 00:12 (keyframe)"},
        image(BLUE),
    ]
    assert base64.b64decode(user["content"][4]["source"]["data"]) == BLUE


@both
def test_local_server_needs_no_key(server: tuple[str, Behaviour], kind: str) -> None:
    url, behaviour = server
    assert list(BACKENDS[kind](url).stream(PROMPT, 10)) == DELTAS
    assert sent_key(behaviour.requests[0].headers) == "not-needed"


@both
def test_key_from_the_environment(
    server: tuple[str, Behaviour], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, behaviour = server
    monkeypatch.setenv("OPENAI_API_KEY" if kind == "openai" else "ANTHROPIC_API_KEY", "sk-from-env")
    list(BACKENDS[kind](url).stream(PROMPT, 10))
    assert sent_key(behaviour.requests[0].headers) == "sk-from-env"


@pytest.mark.parametrize("backend_cls", [OpenAICompatBackend, AnthropicBackend])
def test_config_errors(backend_cls: type, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no Anthropic profile on disk either
    for name in ("ANTHROPIC_CONFIG_DIR", "ANTHROPIC_PROFILE", "ANTHROPIC_FEDERATION_RULE_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="model"):
        backend_cls("", base_url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="API key"):
        backend_cls("some-model")  # the vendor's own server, and no key anywhere


def test_anthropic_broken_profile_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("ANTHROPIC_PROFILE", "missing")
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="credentials"):
        AnthropicBackend("claude-test")


@both
def test_http_error_names_the_status_and_message(server: tuple[str, Behaviour], kind: str) -> None:
    url, behaviour = server
    behaviour.mode = "http500"
    with pytest.raises(BackendError) as caught:
        list(BACKENDS[kind](url, api_key="k").stream(PROMPT, 10))
    assert not isinstance(caught.value, BackendTimeoutError)
    message = str(caught.value)
    assert "500" in message and "model exploded" in message
    assert kind in message and url in message
    assert len(behaviour.requests) == 1  # no retries


@both
def test_error_event_inside_the_stream(server: tuple[str, Behaviour], kind: str) -> None:
    url, behaviour = server
    behaviour.mode = "error_event"
    got = []
    with pytest.raises(BackendError, match="the model crashed"):
        got.extend(BACKENDS[kind](url, api_key="k").stream(PROMPT, 10))
    assert got == DELTAS[:1]


@both
@pytest.mark.parametrize("mode", ["slow", "stall"])
def test_timeout(server: tuple[str, Behaviour], kind: str, mode: str) -> None:
    """No answer within timeout_s, before the first token (slow) or between tokens (stall)."""
    url, behaviour = server
    behaviour.mode = mode
    got = []
    start = time.monotonic()
    with pytest.raises(BackendTimeoutError, match=r"within 0\.5 s"):
        got.extend(BACKENDS[kind](url, api_key="k").stream(PROMPT, TIMEOUT_S))
    assert time.monotonic() - start < SLOW_S - 0.5
    assert got == ([] if mode == "slow" else DELTAS[:1])
    assert len(behaviour.requests) == 1  # no retries


@both
def test_unreachable_server(kind: str) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(BackendError) as caught:
        list(BACKENDS[kind](url, api_key="k").stream(PROMPT, 5))
    assert not isinstance(caught.value, BackendTimeoutError)
    assert str(port) in str(caught.value)
    assert time.monotonic() - start < 5
