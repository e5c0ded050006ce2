"""Contrastive training / fine-tuning of open_clip models on image-caption pairs.

The result is a folder loadable with
``open_clip.create_model_and_transforms("local-dir:/path/to/folder")``:
it holds ``open_clip_config.json`` ({"model_cfg": ..., "preprocess_cfg": ...})
and ``open_clip_model.safetensors``.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.loss import ClipLoss
from safetensors.torch import save_file
from torch.optim.lr_scheduler import LRScheduler

from mmsearch.encode.images import read_picture
from mmsearch.encode.models import open_clip_quiet
from mmsearch.encode.spec import MODEL_CONFIGS
from mmsearch.errors import ConfigError, MediaError

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
LOCAL_DIR_PREFIX = "local-dir:"
_MAX_LOGIT_SCALE = math.log(100.0)  # the clamp open_clip's own training loop applies

EpochCallback = Callable[[int, float], None]


@dataclass
class TrainConfig:
    """Settings for :func:`train`.

    ``model`` is a config shipped in ``search/encode/model_configs`` (e.g. "mmsearch-tiny", trained from
    scratch), an open_clip model name (with ``pretrained``, a tag or a weights file), or
    ``"local-dir:PATH"`` (or just the folder's path) to fine-tune a previously saved model.
    The defaults suit training mmsearch-tiny from scratch; fine-tuning a pretrained model wants
    a far smaller ``lr`` (around 1e-5).
    ``spread_duplicates`` orders each epoch so that repeated captions rarely share a batch
    (they are false negatives for the contrastive loss); it matters when captions repeat,
    as with class-like captions, and is harmless otherwise. Keep ``batch_size`` at most the
    number of distinct captions for it to work fully.
    ``half`` saves the weights in float16: half the file, loaded back into float32 (the repo's
    fixture models are saved so).
    ``partial_captions`` is the chance that a sample's caption is cut, for one step, to a random part
    of its words ("a blue circle" -> "blue", "circle", "blue circle"); the loss then counts every
    image whose caption holds all those words as a match, so the text tower learns single attributes
    too and queries can be composed ("this picture, but blue").
    """

    model: str = "mmsearch-tiny"
    pretrained: str | None = None
    epochs: int = 15
    batch_size: int = 30
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    seed: int = 0
    augment: bool = True
    spread_duplicates: bool = True
    partial_captions: float = 0.0
    num_threads: int | None = 2
    device: str = "cpu"
    half: bool = False


def builtin_models() -> list[str]:
    """Names of the model configs shipped with mmsearch."""
    return sorted(p.stem for p in MODEL_CONFIGS.glob("*.json"))


# --------------------------------------------------------------------------- model and data


def _resolve_model_name(name: str) -> str:
    """Register a shipped config if needed; turn a saved folder's path into ``local-dir:``."""
    if name.startswith(LOCAL_DIR_PREFIX):
        return name
    if (MODEL_CONFIGS / f"{name}.json").is_file():
        if name not in open_clip.list_models():
            open_clip.add_model_config(MODEL_CONFIGS / f"{name}.json")
        return name
    if (Path(name) / CONFIG_FILE).is_file():
        return LOCAL_DIR_PREFIX + name
    return name


def _model_cfg(name: str) -> dict[str, Any]:
    """The architecture config of a (resolved) model name, as it will be saved."""
    if name.startswith(LOCAL_DIR_PREFIX):
        folder = Path(name.removeprefix(LOCAL_DIR_PREFIX))
        return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["model_cfg"]
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"unknown model {name!r}; shipped configs: {builtin_models()}")
    return cfg


def _create_model(config: TrainConfig) -> tuple[torch.nn.Module, Callable, Callable, dict[str, Any]]:
    """Build the model with its own eval preprocess and tokenizer, plus the config to save."""
    name = _resolve_model_name(config.model)
    model_cfg = _model_cfg(name)
    pretrained = None if name.startswith(LOCAL_DIR_PREFIX) else config.pretrained
    with open_clip_quiet():  # "initialized randomly": training from scratch is what was asked
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=config.device
        )
    return model, preprocess, open_clip.get_tokenizer(name), model_cfg


@dataclass
class _Data:
    """Training set held in memory: preprocessed images, tokens and raw captions."""

    tokenizer: Callable
    images: torch.Tensor
    tokens: torch.Tensor
    captions: list[str]


def _prepare(pairs: list[tuple[Path, str]], preprocess: Callable, tokenizer: Callable) -> _Data:
    """Decode and preprocess every image once (datasets here are small) and tokenize captions. A picture
    that cannot be read stops the training before it starts, naming the file."""
    tensors = []
    for path, _ in pairs:
        try:
            tensors.append(preprocess(read_picture(path).image))
        except MediaError as exc:
            raise ConfigError(f"cannot train on {path}: {exc}") from exc
    captions = [c for _, c in pairs]
    return _Data(tokenizer, torch.stack(tensors), tokenizer(captions), captions)


def _augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Label-preserving tensor augmentation: random mirror and quarter turns."""
    n = images.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    turns = torch.randint(0, 4, (n,), generator=gen)
    out = images.clone()
    for k in range(1, 4):
        sel = turns == k
        if sel.any():
            out[sel] = torch.rot90(images[sel], k, dims=(-2, -1))
    return out


def _epoch_order(captions: list[str], spread: bool, gen: torch.Generator) -> list[int]:
    """A random order; with ``spread``, repeats of a caption are kept as far apart as possible.

    Sorting by (occurrence number, random) leaves every run of ``len(set(captions))``
    consecutive items free of repeated captions.
    """
    order = torch.randperm(len(captions), generator=gen).tolist()
    if not spread:
        return order
    seen: dict[str, int] = {}
    rank = {}
    for i in order:
        rank[i] = seen.get(captions[i], 0)
        seen[captions[i]] = rank[i] + 1
    return sorted(order, key=lambda i: rank[i])  # stable: keeps the random order within a rank


_FILLER = frozenset({"a", "an", "the"})


def _words(caption: str) -> list[str]:
    return [w for w in caption.lower().split() if w not in _FILLER]


def _partial(caption: str, gen: torch.Generator) -> str:
    """A random non-empty part of the caption's words, in order."""
    words = _words(caption)
    if len(words) < 2:
        return caption
    keep = torch.rand(len(words), generator=gen) < 0.5
    if not keep.any():
        keep[torch.randint(len(words), (1,), generator=gen)] = True
    return " ".join(w for w, k in zip(words, keep.tolist(), strict=True) if k)


def _matches(full: list[str], texts: list[str]) -> torch.Tensor:
    """(images, texts) 1.0 where every word of the text is in the image's full caption."""
    image_words = [set(_words(c)) for c in full]
    text_words = [set(_words(t)) for t in texts]
    return torch.tensor([[float(t <= i) for t in text_words] for i in image_words])


def _multi_positive_loss(
    image_f: torch.Tensor, text_f: torch.Tensor, scale: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy with several right answers per row: targets spread evenly over
    every matching text (for an image) and every matching image (for a text)."""
    logits = scale * image_f @ text_f.T
    per_image = targets / targets.sum(1, keepdim=True)
    per_text = targets.T / targets.T.sum(1, keepdim=True)
    return 0.5 * (
        torch.nn.functional.cross_entropy(logits, per_image)
        + torch.nn.functional.cross_entropy(logits.T, per_text)
    )


# --------------------------------------------------------------------------- training


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, without weight decay on gains, biases, norms and the logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exclude = param.ndim < 2 or any(k in name for k in ("bn", "ln", "bias", "logit_scale"))
        (no_decay if exclude else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs: dict[str, Any] = {"lr": config.lr, "betas": (0.9, 0.98), "eps": 1e-6}
    try:  # the fused kernel is ~20x faster on CPU here: the 49408-row token embedding dominates
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, **kwargs)


def _schedule(optimizer: torch.optim.Optimizer, total: int, warmup_fraction: float) -> LRScheduler:
    """Linear warmup followed by cosine decay to zero, stepped once per batch."""
    warmup = max(1, round(total * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batches(order: list[int], batch_size: int) -> list[list[int]]:
    """Split an order into batches, dropping a last batch of one (no contrast, breaks BatchNorm)."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [b for b in batches if len(b) >= 2]


def _run_epoch(
    model: torch.nn.Module,
    data: _Data,
    config: TrainConfig,
    opt: torch.optim.Optimizer,
    sched: LRScheduler,
    gen: torch.Generator,
) -> float:
    """One pass over the data; returns the mean loss."""
    loss_fn = ClipLoss()
    total, count = 0.0, 0
    for idx in _batches(_epoch_order(data.captions, config.spread_duplicates, gen), config.batch_size):
        images = _augment(data.images[idx], gen) if config.augment else data.images[idx]
        tokens = data.tokens[idx]
        if config.partial_captions > 0:
            full = [data.captions[i] for i in idx]
            texts = [
                _partial(c, gen) if torch.rand(1, generator=gen) < config.partial_captions else c
                for c in full
            ]
            tokens = data.tokenizer(texts)
        image_f, text_f, scale = model(images.to(config.device), tokens.to(config.device))[:3]
        if config.partial_captions > 0:
            loss = _multi_positive_loss(image_f, text_f, scale, _matches(full, texts).to(config.device))
        else:
            loss = loss_fn(image_f, text_f, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, _MAX_LOGIT_SCALE)
        total, count = total + loss.item() * len(idx), count + len(idx)
    return total / max(count, 1)


def _fit(model: torch.nn.Module, data: _Data, config: TrainConfig, on_epoch: EpochCallback | None) -> None:
    """Optimise ``model`` in place for ``config.epochs`` epochs."""
    steps = len(_batches(list(range(len(data.captions))), config.batch_size))
    optimizer = _optimizer(model, config)
    scheduler = _schedule(optimizer, config.epochs * steps, config.warmup_fraction)
    gen = torch.Generator().manual_seed(config.seed)
    model.train()
    for epoch in range(1, config.epochs + 1):
        loss = _run_epoch(model, data, config, optimizer, scheduler, gen)
        if on_epoch is not None:
            on_epoch(epoch, loss)
    model.eval()


def save_model(model: torch.nn.Module, model_cfg: dict[str, Any], out_dir: Path, half: bool = False) -> Path:
    """Write an open_clip ``local-dir`` folder: built in a temp dir beside it, then renamed into place.

    An existing ``out_dir`` is replaced; ``half`` stores floating-point weights as float16. Returns the
    folder's absolute path.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes an owner-only folder
        preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}))
        config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / WEIGHTS_FILE).chmod(0o644)  # safetensors writes owner-only files
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``, moving an existing ``target`` aside first and deleting it after."""
    if not target.exists():
        new.rename(target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    target.rename(aside / target.name)
    try:
        new.rename(target)
    except BaseException:
        (aside / target.name).rename(target)  # put the previous model back
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def train(
    pairs: list[tuple[Path, str]],
    out_dir: Path,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
) -> Path:
    """Contrastively train ``config.model`` on ``pairs`` and save it to ``out_dir``.

    ``on_epoch(epoch, mean_loss)`` is called after every epoch (1-based). Seeds torch's
    global RNG with ``config.seed``. Returns the saved folder's absolute path; load it with
    ``open_clip.create_model_and_transforms(f"local-dir:{path}")``.
    """
    if len(pairs) < 2:
        raise ValueError("training needs at least two image-caption pairs")
    if config.epochs < 1 or config.batch_size < 2:
        raise ValueError("epochs must be >= 1 and batch_size >= 2")
    threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        torch.manual_seed(config.seed)
        model, preprocess, tokenizer, model_cfg = _create_model(config)
        data = _prepare(pairs, preprocess, tokenizer)
        _fit(model, data, config, on_epoch)
        return save_model(model, model_cfg, out_dir, config.half)
    finally:
        torch.set_num_threads(threads)
