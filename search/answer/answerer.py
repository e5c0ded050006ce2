"""Answers with citations: question -> search -> numbered evidence -> prompt -> VLM -> cited answer.

Evidence is the top hits whose fused score (the cohort margin, search/query/fusion.py: how much better the
question fits the hit than any typical query does) reaches `min_relevance` (and whose cosine reaches
`min_similarity`, if set); when none does, the answer says the collection has nothing on it and no model
is called. The prompt is bounded: at most `max_evidence` hits, `max_images` pictures of at most
`image_px`, `max_prompt_chars` of text. The model is asked to cite evidence as [1], [2] ...; the
citations are parsed back and mapped to items, segments and timestamps.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from mmsearch.answer.vlm.base import ImagePart, Prompt, TextPart, VLMBackend
from mmsearch.config import AnswerSettings
from mmsearch.defaults import LOCAL_VLM
from mmsearch.errors import ConfigError, InvalidQueryError, MediaError, ModelUnavailableError
from mmsearch.hits import Hit, clock
from mmsearch.query.engine import Engine
from mmsearch.query.request import Filters, SearchRequest

SYSTEM = (
    "You answer questions about the user's own media collection (pictures, video scenes and what is "
    "said in recordings) using only the numbered evidence given. After each claim, cite the evidence "
    "that supports it by its number in square brackets, like [1] or [2][3]. If the evidence does not "
    "answer the question, say so plainly. Be brief."
)
NOTHING_FOUND = "The collection has nothing that matches this question, so there is no answer to give."
SNIPPET_CHARS = 300
JPEG_QUALITY = 85
CITATION = re.compile(r"\[(\d+(?:\s*(?:,|-|\u2013)\s*\d+)*)\]")


@dataclass(frozen=True)
class Evidence:
    number: int  # [number] in the prompt and the answer
    hit: Hit
    image: bytes | None = None  # the JPEG sent to the model, if any


@dataclass
class Answer:
    question: str
    text: str
    evidence: list[Evidence]
    citations: list[Evidence] = field(default_factory=list)  # cited evidence, in order of first citation
    unknown_citations: list[int] = field(default_factory=list)  # [n] that name no evidence
    answered: bool = True  # False when nothing relevant was found and no model was asked
    backend: str | None = None


def cited_numbers(text: str) -> list[int]:
    """Evidence numbers cited as [1], [1, 3], [2-4] or [1][2], in order of first appearance."""
    seen: list[int] = []
    for match in CITATION.finditer(text):
        for part in match.group(1).split(","):
            bounds = [int(b) for b in re.split(r"\s*[-\u2013]\s*", part.strip())]
            numbers = (
                range(bounds[0], bounds[-1] + 1)
                if len(bounds) == 2 and bounds[1] - bounds[0] < 50
                else bounds
            )
            seen += [n for n in numbers if n not in seen]
    return seen


def cite(text: str, evidence: list[Evidence]) -> tuple[list[Evidence], list[int]]:
    by_number = {e.number: e for e in evidence}
    numbers = cited_numbers(text)
    return [by_number[n] for n in numbers if n in by_number], [n for n in numbers if n not in by_number]


def describe(e: Evidence) -> str:
    """One line of evidence as the model reads it."""
    h = e.hit
    where = f" at {clock(h.t_start)}-{clock(h.t_end)}" if h.t_start is not None else ""
    what = {"image": "a picture", "video": "a video", "audio": "a recording"}.get(h.kind, h.kind)
    line = f"[{e.number}] {what} ({Path(h.uri).name}){where}"
    if h.text:
        snippet = h.text if len(h.text) <= SNIPPET_CHARS else h.text[:SNIPPET_CHARS] + "..."
        line += f', where someone says: "{snippet}"'
    elif e.image is not None:
        line += ", shown in the picture that follows"
    return line


class Answerer:
    def __init__(self, engine: Engine, settings: AnswerSettings, backend: VLMBackend | None = None):
        self.engine = engine
        self.settings = settings
        self._backend = backend

    @cached_property
    def why_not(self) -> str | None:
        """Why no answer can be had here (checked once, without loading anything); None when one may."""
        return unavailable(self.settings) if self._backend is None else None

    @property
    def backend(self) -> VLMBackend:
        if self._backend is None:
            self._backend = make_backend(self.settings)
        return self._backend

    def evidence(self, question: str, filters: Filters | None = None) -> list[Evidence]:
        if not question.strip():
            raise InvalidQueryError("the question is empty")
        s = self.settings
        request = SearchRequest.words(question, k=s.max_evidence, filters=filters or Filters(), show_all=True)
        hits = self.engine.search(request).hits
        floor = s.min_similarity if s.min_similarity is not None else -1.0
        relevant = [h for h in hits if h.score >= s.min_relevance and h.similarity >= floor]
        out, images = [], 0
        for number, hit in enumerate(relevant, 1):
            image = self._picture(hit) if images < s.max_images else None
            images += image is not None
            out.append(Evidence(number, hit, image))
        return out

    def _picture(self, hit: Hit) -> bytes | None:
        """A JPEG of the hit's picture (the image, or the scene's keyframe), at most image_px."""
        if hit.space != "image":
            return None
        try:
            image = self.engine.hit_picture(hit, self.settings.image_px)
        except MediaError:
            return None  # the file changed or vanished since it was indexed: text-only evidence
        if image is None:
            return None
        image.thumbnail((self.settings.image_px, self.settings.image_px))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue()

    def prompt(self, question: str, evidence: list[Evidence]) -> Prompt:
        budget = self.settings.max_prompt_chars - len(SYSTEM) - len(question) - 200
        parts: list[TextPart | ImagePart] = [TextPart(f"Question: {question}\n\nEvidence:")]
        for e in evidence:
            line = describe(e)
            if len(line) > budget:
                break
            budget -= len(line)
            parts.append(TextPart(line))
            if e.image is not None:
                parts.append(ImagePart(e.image))
        parts.append(TextPart("Answer the question from this evidence, citing it by number."))
        return Prompt(SYSTEM, tuple(parts), self.settings.max_tokens)

    def stream(
        self, question: str, filters: Filters | None = None, evidence: list[Evidence] | None = None
    ) -> Iterator[str | Answer]:
        """Text deltas as the model writes them, then the finished Answer. `evidence` found earlier by
        `self.evidence()` saves searching again."""
        question = question.strip()
        if not question:
            raise InvalidQueryError("the question is empty")
        if evidence is None:
            evidence = self.evidence(question, filters)
        if not evidence:
            yield NOTHING_FOUND
            yield Answer(question, NOTHING_FOUND, [], answered=False)
            return
        if self.why_not:  # the plain explanation at every door, not a model hub's error text
            raise ModelUnavailableError(self.why_not)
        backend = self.backend
        pieces = []
        for delta in backend.stream(self.prompt(question, evidence), self.settings.timeout_s):
            pieces.append(delta)
            yield delta
        text = "".join(pieces).strip()
        citations, unknown = cite(text, evidence)
        yield Answer(question, text, evidence, citations, unknown, backend=backend.name)

    def answer(
        self, question: str, filters: Filters | None = None, evidence: list[Evidence] | None = None
    ) -> Answer:
        *_, answer = self.stream(question, filters, evidence)
        return answer


SETUP = (
    "Set one: a server (MMSEARCH_ANSWER__BACKEND=openai, MMSEARCH_ANSWER__MODEL and "
    "MMSEARCH_ANSWER__BASE_URL, e.g. http://127.0.0.1:11434/v1 for Ollama or a vLLM URL), Anthropic "
    "(MMSEARCH_ANSWER__BACKEND=anthropic, MMSEARCH_ANSWER__MODEL and ANTHROPIC_API_KEY), or a local "
    "model (MMSEARCH_ANSWER__MODEL=a folder or a hub name in the cache). See docs/answers.md."
)


def unavailable(settings: AnswerSettings) -> str | None:
    """Why these settings can give no answer, found without loading a model or calling a server (the
    page says it before anyone asks); None when an answer may come."""
    if settings.backend != "local":
        try:
            make_backend(settings)
        except (ConfigError, ModelUnavailableError) as exc:
            return f"{exc}. {SETUP}"
        return None
    model = settings.model or LOCAL_VLM
    if Path(model).is_dir():
        return None
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        return f"The local answer model folder {model} does not exist. {SETUP}"
    from huggingface_hub import constants as hub_constants
    from huggingface_hub import try_to_load_from_cache

    from mmsearch.encode.hub import offline_if_unreachable

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    offline_if_unreachable()
    if not hub_constants.HF_HUB_OFFLINE:
        return None  # fetched on the first question
    return (
        f"No answer model here: the local model {model} is not on this machine and the model hub "
        f"cannot be reached to fetch it. {SETUP}"
    )


def make_backend(settings: AnswerSettings) -> VLMBackend:
    try:
        if settings.backend == "local":
            from mmsearch.answer.vlm.local import LocalBackend

            return LocalBackend(settings.model, settings.device)
        if not settings.model:
            raise ConfigError(
                f"the {settings.backend} answer backend needs a model name (MMSEARCH_ANSWER__MODEL)"
            )
        if settings.backend == "openai":
            from mmsearch.answer.vlm.openai_compat import OpenAICompatBackend

            return OpenAICompatBackend(settings.model, settings.base_url, settings.api_key)
        from mmsearch.answer.vlm.anthropic_api import AnthropicBackend

        return AnthropicBackend(settings.model, settings.base_url, settings.api_key)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"the {settings.backend} answer backend needs: pip install 'mmsearch[vlm]' ({exc})"
        ) from exc
