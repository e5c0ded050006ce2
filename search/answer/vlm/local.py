"""A backend that runs a transformers image-text-to-text model in-process.

Generic over the architectures `AutoModelForImageTextToText` knows (SmolVLM/Idefics3, Qwen2-VL and
Qwen2.5-VL, LLaVA, PaliGemma, ...), named on the hub or given as a local folder. The model loads on the
first answer, once; answers are generated one at a time, since a model is not re-entrant.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from mmsearch.answer.vlm.base import ImagePart, Prompt, TextPart
from mmsearch.defaults import LOCAL_VLM
from mmsearch.encode.hub import offline_if_unreachable
from mmsearch.encode.models import pick_device
from mmsearch.errors import BackendError, BackendTimeoutError, ModelUnavailableError

log = logging.getLogger(__name__)


class LocalBackend:
    name = "local"

    def __init__(self, model: str | None = None, device: str = "auto") -> None:
        self.model = model or LOCAL_VLM
        self.device = device
        self._loaded: tuple[Any, torch.nn.Module] | None = None
        self._load_lock = threading.Lock()
        self._busy = threading.Lock()  # one generate at a time

    def stream(self, prompt: Prompt, timeout_s: float) -> Iterator[str]:
        processor, model = self._load()
        if not self._busy.acquire(timeout=timeout_s):
            raise BackendTimeoutError(f"local model {self.model} still busy after {timeout_s:g} s")
        streamer = TextIteratorStreamer(
            processor.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout_s
        )
        cancel = threading.Event()
        errors: list[Exception] = []
        worker = threading.Thread(
            target=self._generate,
            args=(processor, model, prompt, streamer, cancel, errors),
            name="vlm-generate",
            daemon=True,
        )
        try:
            worker.start()
        except BaseException:
            self._busy.release()
            raise
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except queue.Empty:
            raise BackendTimeoutError(
                f"local model {self.model} gave no text within {timeout_s:g} s"
            ) from None
        finally:
            cancel.set()  # a caller that stops early (timeout, closed stream) stops the generation too
        if errors:
            raise BackendError(f"local model {self.model} failed: {errors[0]}") from errors[0]

    def _load(self) -> tuple[Any, torch.nn.Module]:
        """Processor and model, loaded on the first call only (concurrent first calls wait for one load)."""
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load_now()
            return self._loaded

    def _load_now(self) -> tuple[Any, torch.nn.Module]:
        local = Path(self.model).is_dir()
        if not local:
            offline_if_unreachable()
        device = pick_device(self.device)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        try:
            processor = AutoProcessor.from_pretrained(self.model)
            model = AutoModelForImageTextToText.from_pretrained(self.model, dtype=dtype)
        except Exception as exc:
            hint = "" if local else " (without network: a local model folder, or one in the hub cache)"
            raise ModelUnavailableError(
                f"cannot load the vision-language model {self.model!r}{hint}: {exc}"
            ) from exc
        log.info("loaded vision-language model %s on %s", self.model, device)
        return processor, model.to(device).eval()

    def _generate(
        self,
        processor: Any,
        model: torch.nn.Module,
        prompt: Prompt,
        streamer: TextIteratorStreamer,
        cancel: threading.Event,
        errors: list[Exception],
    ) -> None:
        """Runs in the worker thread: errors are handed to the caller, the stream always ends."""
        try:
            inputs = _inputs(processor, prompt).to(model.device, dtype=model.dtype)
            model.generate(
                **inputs,
                max_new_tokens=prompt.max_tokens,
                do_sample=False,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
            )
        except Exception as exc:
            errors.append(exc)
            streamer.end()
        finally:
            self._busy.release()


class _Cancelled(StoppingCriteria):
    """Stops generating once the caller has stopped reading."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def _inputs(processor: Any, prompt: Prompt) -> Any:
    """The processor's tensors for the prompt: chat template text plus the decoded pictures."""
    images = [Image.open(io.BytesIO(p.jpeg)).convert("RGB") for p in prompt.parts if isinstance(p, ImagePart)]
    return processor(text=_chat_text(processor, prompt), images=images or None, return_tensors="pt")


def _chat_text(processor: Any, prompt: Prompt) -> str:
    """The prompt through the processor's chat template, the system text in a system turn where the
    template has one and at the head of the user turn otherwise."""
    if getattr(processor, "chat_template", None) is None:
        # No template (e.g. PaliGemma): image placeholders first, then the text, as such models expect.
        n_images = sum(isinstance(p, ImagePart) for p in prompt.parts)
        texts = [prompt.system, *(p.text for p in prompt.parts if isinstance(p, TextPart))]
        return processor.image_token * n_images + "\n\n".join(t for t in texts if t)
    content = [
        {"type": "image"} if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
        for p in prompt.parts
    ]
    if prompt.system:
        system = {"role": "system", "content": [{"type": "text", "text": prompt.system}]}
        try:
            text = processor.apply_chat_template(
                [system, {"role": "user", "content": content}], add_generation_prompt=True
            )
            if prompt.system.strip() in text:
                return text
        except TemplateError:
            pass  # templates without a system role raise
        content = [{"type": "text", "text": prompt.system + "\n\n"}, *content]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
