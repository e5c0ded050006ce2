"""A local HTTP server that speaks the OpenAI chat-completions and Anthropic Messages wire formats,
streaming included, records every request and can fail on purpose: an HTTP error, a reply that comes too
late, a stream that stalls halfway, an error event inside the stream."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from mmsearch.answer.vlm.base import ImagePart, Prompt, TextPart

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


@contextmanager
def fake_vlm_server() -> Iterator[tuple[str, Behaviour]]:
    """A local server speaking OpenAI's and Anthropic's streaming wire formats; yields (URL, behaviour)."""
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
