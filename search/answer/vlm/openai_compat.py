"""A backend for any OpenAI-compatible chat-completions server: OpenAI, vLLM, Ollama, llama.cpp, LM Studio.

Talks through the official `openai` SDK, streaming (`stream=True`); pictures go as base64 `data:` URLs.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import openai

from mmsearch.answer.vlm.base import ImagePart, Prompt, TextPart
from mmsearch.errors import BackendError, BackendTimeoutError, ConfigError

KEYLESS = "not-needed"  # local servers (Ollama, vLLM, llama.cpp) take any key, but the SDK insists on one


class OpenAICompatBackend:
    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None) -> None:
        if not model:
            raise ConfigError("the openai backend needs a model name (answer.model)")
        key = api_key or os.environ.get("OPENAI_API_KEY") or (KEYLESS if base_url else None)
        if not key:
            raise ConfigError("the openai backend needs an API key: set answer.api_key or OPENAI_API_KEY")
        self.model = model
        self._client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)

    def stream(self, prompt: Prompt, timeout_s: float) -> Iterator[str]:
        where = f"openai backend (model {self.model} at {self._client.base_url})"
        messages = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": [_content_part(part) for part in prompt.parts]},
        ]
        try:
            with self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=prompt.max_tokens,
                stream=True,
                timeout=timeout_s,
            ) as chunks:
                for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except openai.APITimeoutError as err:
            raise BackendTimeoutError(f"{where} did not answer within {timeout_s:g} s") from err
        except openai.APIStatusError as err:
            message = _server_message(err.body, err.message)
            raise BackendError(f"{where} answered HTTP {err.status_code}: {message}") from err
        except openai.APIConnectionError as err:
            raise BackendError(f"{where} cannot be reached: {err.__cause__ or err.message}") from err
        except openai.APIError as err:
            raise BackendError(f"{where} failed: {_server_message(err.body, err.message)}") from err


def _content_part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    data = base64.b64encode(part.jpeg).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def _server_message(body: object, fallback: str) -> str:
    """The server's own error message: OpenAI's {"error": {"message": ...}} (or its inner object)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else fallback
