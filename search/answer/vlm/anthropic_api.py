"""A backend for Anthropic's Messages API (api.anthropic.com, or any server that speaks it at `base_url`).

Talks through the official `anthropic` SDK, streaming; pictures go as base64 image content blocks.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2

from mmsearch.answer.vlm.base import ImagePart, Prompt, TextPart
from mmsearch.errors import BackendError, BackendTimeoutError, ConfigError

KEYLESS = "not-needed"  # a self-hosted server may need no key, but the SDK sends no request without one


class AnthropicBackend:
    name = "anthropic"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None) -> None:
        if not model:
            raise ConfigError("the anthropic backend needs a model name (answer.model)")
        self.model = model
        # With no api_key the SDK looks for ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN and profiles on disk.
        try:
            self._client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
        except anthropic.AnthropicError as err:  # a profile named but broken
            raise ConfigError(f"the anthropic backend cannot load its credentials: {err}") from err
        if not (self._client.api_key or self._client.auth_token or self._client.credentials):
            if not base_url:
                raise ConfigError(
                    "the anthropic backend needs an API key: set answer.api_key or ANTHROPIC_API_KEY"
                )
            self._client = self._client.copy(api_key=KEYLESS)

    def stream(self, prompt: Prompt, timeout_s: float) -> Iterator[str]:
        where = f"anthropic backend (model {self.model} at {self._client.base_url})"
        content = [_content_block(part) for part in prompt.parts]
        try:
            with self._client.messages.stream(
                model=self.model,
                max_tokens=prompt.max_tokens,
                system=prompt.system,
                messages=[{"role": "user", "content": content}],
                timeout=timeout_s,
            ) as events:
                yield from events.text_stream
        # The SDK wraps transport errors while sending the request, but not those while reading the stream.
        except (anthropic.APITimeoutError, httpx2.TimeoutException) as err:
            raise BackendTimeoutError(f"{where} did not answer within {timeout_s:g} s") from err
        except anthropic.APIStatusError as err:
            message = _server_message(err.body, err.message)
            if err.status_code < 400:  # an `error` event inside a stream that began with HTTP 200
                raise BackendError(f"{where} failed mid-answer: {message}") from err
            raise BackendError(f"{where} answered HTTP {err.status_code}: {message}") from err
        except anthropic.APIConnectionError as err:
            raise BackendError(f"{where} cannot be reached: {err.__cause__ or err.message}") from err
        except (anthropic.APIError, httpx2.TransportError) as err:
            raise BackendError(f"{where} failed: {err}") from err


def _content_block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    data = base64.b64encode(part.jpeg).decode("ascii")
    return {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}}


def _server_message(body: object, fallback: str) -> str:
    """The server's own error message: Anthropic's {"type": "error", "error": {"message": ...}}."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else fallback
