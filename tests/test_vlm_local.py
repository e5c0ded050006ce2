"""The local transformers backend, end to end on a tiny random LLaVA built here: real processor, chat
template and generate path, meaningless text."""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import constants as hub_constants
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from mmsearch.answer.vlm import local
from mmsearch.answer.vlm.base import ImagePart, Prompt, TextPart
from mmsearch.answer.vlm.local import LocalBackend
from mmsearch.errors import BackendError, BackendTimeoutError, ModelUnavailableError

SPECIAL = ["<unk>", "<s>", "</s>", "<image>"]
WORDS = [
    "the",
    "a",
    "photo",
    "of",
    "cat",
    "dog",
    "red",
    "blue",
    "green",
    "car",
    "sky",
    "sea",
    "on",
    "in",
    "and",
]
# LLaVA-1.5 style, with a system turn.
TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
NO_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    + TEMPLATE
)


def build_tiny_llava(folder: Path) -> None:
    """A word-level tokenizer, CLIP image processor and a one-layer CLIP + Llama LLaVA, saved to folder."""
    vocab = {token: i for i, token in enumerate([*SPECIAL, *WORDS, "SYSTEM:", "USER:", "ASSISTANT:"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    # 32 px pictures in 8 px patches: 16 patch tokens per picture (the CLS token is dropped, "default").
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=TEMPLATE,
    )
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**small, image_size=32, patch_size=8, projection_dim=32),
        text_config=LlamaConfig(
            **small, vocab_size=len(tokenizer), max_position_embeddings=256, bos_token_id=1, eos_token_id=2
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    # Never a special token: every step decodes to one word and no early end of sequence.
    model.generation_config = GenerationConfig(
        bos_token_id=1, eos_token_id=2, pad_token_id=0, suppress_tokens=list(range(len(SPECIAL)))
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llava")
    build_tiny_llava(folder)
    return folder


@pytest.fixture
def load_count(monkeypatch) -> list[str]:
    """Counts model loads; each is slowed a little so concurrent first calls overlap."""
    loads: list[str] = []
    real = local.AutoModelForImageTextToText

    def from_pretrained(name: str, **kwargs: object) -> torch.nn.Module:
        loads.append(name)
        time.sleep(0.2)
        return real.from_pretrained(name, **kwargs)

    monkeypatch.setattr(
        local, "AutoModelForImageTextToText", SimpleNamespace(from_pretrained=from_pretrained)
    )
    return loads


def jpeg(size: tuple[int, int], colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


def two_images(max_tokens: int = 8) -> Prompt:
    parts = (ImagePart(jpeg((60, 40), "red")), TextPart("a red car"), ImagePart(jpeg((30, 50), "blue")))
    return Prompt("you are a cat", (*parts, TextPart("what is it")), max_tokens)


def test_streams_images_and_text_with_one_load(tiny_vlm: Path, load_count: list[str]) -> None:
    backend = LocalBackend(str(tiny_vlm), device="cpu")
    assert backend.name == "local"
    for _ in range(2):
        deltas = list(backend.stream(two_images(max_tokens=8), timeout_s=30))
        assert deltas and all(deltas)
        assert len("".join(deltas).split()) == 8  # a word per token; the end token is suppressed
    assert load_count == [str(tiny_vlm)]


def test_concurrent_first_calls_load_once(tiny_vlm: Path, load_count: list[str]) -> None:
    backend = LocalBackend(str(tiny_vlm), device="cpu")
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append("".join(backend.stream(two_images(4), 30))))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 2 and all(answers)
    assert len(load_count) == 1


def test_text_only_prompt(tiny_vlm: Path) -> None:
    backend = LocalBackend(str(tiny_vlm), device="cpu")
    text = "".join(backend.stream(Prompt("be brief", (TextPart("the sky"),), max_tokens=3), timeout_s=30))
    assert len(text.split()) == 3  # max_tokens, all of them: the end token is suppressed


def test_system_text_joins_the_user_turn_when_the_template_has_no_system_role(tiny_vlm: Path) -> None:
    processor = AutoProcessor.from_pretrained(tiny_vlm)
    prompt = two_images()
    assert local._chat_text(processor, prompt).startswith("SYSTEM: you are a cat USER: <image>a red car")
    processor.chat_template = NO_SYSTEM_TEMPLATE
    assert local._chat_text(processor, prompt).startswith("USER: you are a cat\n\n <image>a red car")


def test_processor_without_chat_template(tiny_vlm: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_vlm, tmp_path / "no-template")
    (folder / "chat_template.jinja").unlink()
    backend = LocalBackend(str(folder), device="cpu")
    assert "".join(backend.stream(two_images(max_tokens=3), timeout_s=30)).strip()


def test_not_a_model_folder(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("no config here")
    backend = LocalBackend(str(folder), device="cpu")
    with pytest.raises(ModelUnavailableError, match="not-a-model"):
        list(backend.stream(two_images(), timeout_s=30))


def test_unknown_name_offline_names_a_local_folder(monkeypatch) -> None:
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # no waiting on the network here
    backend = LocalBackend("no-such-org/no-such-vlm", device="cpu")
    with pytest.raises(ModelUnavailableError, match=r"no-such-vlm.*local model folder"):
        list(backend.stream(two_images(), timeout_s=30))


def test_timeout_then_usable_again(tiny_vlm: Path, monkeypatch) -> None:
    """Generation held at a gate until the caller has given up: the timeout is certain, not a race."""
    backend = LocalBackend(str(tiny_vlm), device="cpu")
    gate = threading.Event()
    real = LlavaForConditionalGeneration.generate

    def gated(self, *args, **kwargs):
        gate.wait(10)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LlavaForConditionalGeneration, "generate", gated)
    with pytest.raises(BackendTimeoutError):
        list(backend.stream(two_images(), timeout_s=0.05))
    gate.set()  # the abandoned generation stops after one token and frees the model
    assert list(backend.stream(two_images(max_tokens=2), timeout_s=30))


def test_generate_error_surfaces_as_backend_error(tiny_vlm: Path, monkeypatch) -> None:
    backend = LocalBackend(str(tiny_vlm), device="cpu")

    def broken(self, *args, **kwargs):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(LlavaForConditionalGeneration, "generate", broken)
    with pytest.raises(BackendError, match="out of cheese") as caught:
        list(backend.stream(two_images(), timeout_s=30))
    assert not isinstance(caught.value, BackendTimeoutError)
    monkeypatch.undo()
    assert list(backend.stream(two_images(max_tokens=2), timeout_s=30))
