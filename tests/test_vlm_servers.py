"""The server backends against a local HTTP server that speaks each wire format, streaming included.

The server answers OpenAI's `POST /v1/chat/completions` and Anthropic's `POST /v1/messages` with the event
streams the real services send, records every request, and can fail on purpose: an HTTP error, a reply
that comes too late, a stream that stalls halfway, an error event inside the stream.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mmsearch.answer.vlm.anthropic_api import AnthropicBackend
from mmsearch.answer.vlm.openai_compat import OpenAICompatBackend
from mmsearch.errors import BackendError, BackendTimeoutError, ConfigError
from tests.fake_vlm import (
    BLUE,
    DELTAS,
    PROMPT,
    RED,
    SLOW_S,
    TIMEOUT_S,
    Behaviour,
    b64,
    fake_vlm_server,
    sent_key,
)


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    with fake_vlm_server() as running:
        yield running


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
