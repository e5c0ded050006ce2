"""What every VLM backend takes and gives: a Prompt in, text deltas out.

A prompt is a system text plus one user turn made of ordered parts: text, and JPEG images (already
bounded in number and size by search/answer/answerer.py). Each backend maps the parts to its own wire format
(transformers chat template, OpenAI chat-completions content parts, Anthropic content blocks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    jpeg: bytes  # a JPEG, at most AnswerSettings.image_px on its longer side


@dataclass(frozen=True)
class Prompt:
    system: str
    parts: tuple[TextPart | ImagePart, ...]  # the user's turn, in order
    max_tokens: int = 512


class VLMBackend(Protocol):
    """Streams an answer. Raises mmsearch.errors.BackendError on failure and BackendTimeoutError when the
    backend does not answer within `timeout_s` (for the first token and between tokens)."""

    name: str

    def stream(self, prompt: Prompt, timeout_s: float) -> Iterator[str]: ...
