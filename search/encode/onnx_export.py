"""ONNX Runtime towers for an open_clip model: exported once, cached by the model's fingerprint.

The image and text towers are exported separately (each with its L2 normalisation inside the graph),
so a search that only embeds text can open the text tower alone. Export keys: the model fingerprint
names the folder (new weights, new folder) and a hash of the exporter's inputs (this module's format
version, torch and open_clip versions) tells exports of the same weights by different code apart.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import torch

from mmsearch.encode import query_tower
from mmsearch.encode.onnx_towers import IMAGE, OPSET, TEXT, ModelInfo, OnnxTowers, is_cached, tower_path

log = logging.getLogger(__name__)


class _Tower(torch.nn.Module):
    """One tower of the model, to export. It takes the model's mode: the exporter puts the wrapper back in
    its own mode when done, and with it every module under it (a new module is in training mode, which
    would leave the model's batch norms training after the export)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)


class _ImageTower(_Tower):
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


class _TextTower(_Tower):
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=True)


@contextmanager
def _exportable() -> Iterator[None]:
    """The legacy (TorchScript) exporter, which needs no onnxscript, cannot export the fused attention
    kernel that nn.MultiheadAttention takes in inference; switch that fast path off while exporting."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation of the legacy exporter, tracer notes
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export_one(module: torch.nn.Module, example: torch.Tensor, name: str, path: Path) -> None:
    """Write one tower with a dynamic batch axis; the rename makes the file appear whole or not at all."""
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    torch.onnx.export(
        module,
        (example,),
        str(tmp),
        input_names=[name],
        output_names=["embedding"],
        dynamic_axes={name: {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    os.replace(tmp, path)


def model_info(model: torch.nn.Module, dim: int, params: int, image_size: int) -> ModelInfo:
    """What model.json keeps of a loaded model (search/encode/onnx_towers.py)."""
    preprocess = dict(open_clip.get_model_preprocess_cfg(model))
    return ModelInfo(dim, params, image_size, float(model.logit_scale.detach()), preprocess)


def export(model: torch.nn.Module, tokens: torch.Tensor, info: ModelInfo, folder: Path) -> float:
    """Export both towers of a float32 CPU model into `folder`, then its ModelInfo; returns the seconds
    it took."""
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    pixels = torch.zeros(2, 3, info.image_size, info.image_size)
    with _exportable():
        _export_one(_ImageTower(model), pixels, "pixels", tower_path(folder, IMAGE, False))
        _export_one(_TextTower(model), tokens, "tokens", tower_path(folder, TEXT, False))
    info.write(folder)
    return time.perf_counter() - start


def quantise(folder: Path) -> float:
    """int8 dynamic quantisation of both towers' matrix products (weights int8, activations quantised
    per batch); returns the seconds it took. Only MatMul: quantising every op type (the convolution and
    the embedding lookup too) made the ViT-B-32-256 image tower about half as fast on a 2-core Xeon."""
    start = time.perf_counter()
    with quiet_quantiser():
        for tower in (IMAGE, TEXT):
            _quantise_one(tower_path(folder, tower, False), tower_path(folder, tower, True))
    return time.perf_counter() - start


def _quantise_one(source: Path, target: Path, op_types: tuple[str, ...] = ("MatMul",)) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(f".tmp-{os.getpid()}")
    quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types))
    os.replace(tmp, target)


class _NotFromOnnxRuntime(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


@contextmanager
def quiet_quantiser() -> Iterator[None]:
    """quantize_dynamic logs per-tensor notes and a hint to run its pre-processing (whose shape
    inference fails on these graphs) on the root logger."""
    quiet = _NotFromOnnxRuntime()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)


def prepare(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    pixels: torch.Tensor,
    info: ModelInfo,
    folder: Path,
    int8: bool,
) -> None:
    """Make sure the folder holds the towers asked for, exporting (and quantising, then checking) only
    what is missing. `tokens` and `pixels` are probe inputs, preprocessed as the encoder does."""
    if not is_cached(folder, False):
        log.info("exporting the model's towers to ONNX in %s (once per model)", folder)
        log.info("exported in %.1f s", export(model, tokens, info, folder))
    if int8 and not is_cached(folder, True):
        log.info("quantised to int8 in %.1f s", quantise(folder))
    if int8 and ModelInfo.read(folder).int8_cosine_min is None:
        cosine = int8_cosine_min(model, tokens, pixels, folder)
        log.info("int8 towers against float32 torch on probe inputs: cosine >= %.4f", cosine)
        replace(ModelInfo.read(folder), int8_cosine_min=cosine).write(folder)


def int8_cosine_min(
    model: torch.nn.Module, tokens: torch.Tensor, pixels: torch.Tensor, folder: Path
) -> float:
    """The lowest cosine between the int8 towers' vectors and torch float32's for the probe inputs."""
    with torch.inference_mode():
        images = model.encode_image(pixels, normalize=True).float().numpy()
        texts = model.encode_text(tokens, normalize=True).float().numpy()
    towers = OnnxTowers(folder, True, threads=len(os.sched_getaffinity(0)))
    cosines = np.concatenate(
        [
            (query_tower.unit(towers.encode_image(pixels.numpy())) * images).sum(1),
            (query_tower.unit(towers.encode_text(tokens.numpy())) * texts).sum(1),
        ]
    )
    return round(float(cosines.min()), 5)


# Texts the query tower's export checks against open_clip: tokens equal, cosine to float32 torch.
PROBE_TEXTS = (
    "a photo of a cat",
    "red",
    "A RED Circle on a blue background!",
    "two dogs playing in the snow, 3 balls",
    "what did she say about the quarterly numbers?",
    "l'été à Paris, café crème",
    "東京の夜景",
    "smile 😀 please",
    "\u201ccurly quotes\u201d and \u2018single\u2019 ones",
    "fish &amp; chips &lt;b&gt;",
    "tabs\tand\nnew   lines",
    "it's, they're, we've, I'm, you'll, he'd",
    "SKU-12345/XL size 42.5 cm",
    "<start_of_text> is a special token",
    " ".join(["a long sentence that runs past the seventy seven token context of the tower"] * 6),
)


def supports_query_tower(model: torch.nn.Module, tokenizer: object) -> bool:
    """open_clip CLIPs with a causal text tower pooled at the end token, batch-first residual blocks
    and open_clip's own BPE: what `_QueryTextTower` writes out."""
    return (
        isinstance(model, open_clip.model.CLIP)
        and getattr(model, "text_pool_type", None) == "argmax"
        and getattr(model, "attn_mask", None) is not None
        and getattr(model.transformer, "batch_first", False)
        and all(type(b) is open_clip.transformer.ResidualAttentionBlock for b in model.transformer.resblocks)
        and isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer)
    )


def _causal_attention(attn: torch.nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """nn.MultiheadAttention's self-attention under a causal mask, with shapes the tracer keeps
    symbolic (its own trace fixes the sequence length)."""
    batch, width = x.shape[0], x.shape[-1]
    qkv = torch.nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.reshape(batch, -1, 3, attn.num_heads, width // attn.num_heads).permute(2, 0, 3, 1, 4)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    return attn.out_proj(out.transpose(1, 2).reshape(batch, -1, width))


class _QueryTextTower(_Tower):
    """CLIP's encode_text over tokens (batch, length) of any length, written out block by block as
    open_clip's ResidualAttentionBlock runs them; L2-normalised."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.token_embedding(tokens) + m.positional_embedding[: tokens.shape[1]]
        for block in m.transformer.resblocks:
            x = x + block.ls_1(_causal_attention(block.attn, block.ln_1(x)))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
        x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
        return torch.nn.functional.normalize(x, dim=-1)


def save_bpe(tokenizer: open_clip.tokenizer.SimpleTokenizer, folder: Path) -> None:
    """open_clip's vocabulary and merges, as query_tower.tokenizer reads them."""
    (folder / query_tower.VOCAB).write_text(json.dumps(tokenizer.encoder, ensure_ascii=False), "utf-8")
    merges = sorted(tokenizer.bpe_ranks, key=tokenizer.bpe_ranks.get)
    lines = "".join(f"{a} {b}\n" for a, b in merges)
    (folder / query_tower.MERGES).write_text(f"#version: 0.2\n{lines}", "utf-8")


def export_query_tower(
    model: open_clip.model.CLIP,
    tokenizer: open_clip.tokenizer.SimpleTokenizer,
    folder: Path,
    fingerprint: str,
) -> query_tower.TowerMeta:
    """Write the int8 query tower and its tokenizer into `folder`, check both against open_clip on
    PROBE_TEXTS, and record the check in its meta (written last)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"text.float32.tmp-{os.getpid()}.onnx"
    quantised = folder / f"text.int8.tmp-{os.getpid()}.onnx"
    probe = tokenizer(["a photo of a cat", "probe"])
    with _exportable():
        torch.onnx.export(
            _QueryTextTower(model),
            (probe[:, : int(probe.argmax(dim=1).max()) + 1],),
            str(source),
            input_names=["tokens"],
            output_names=["embedding"],
            dynamic_axes={"tokens": {0: "batch", 1: "length"}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    try:
        with quiet_quantiser():
            _quantise_one(source, quantised, ("MatMul", "Gather"))  # the embeddings too
        query_tower.optimise(quantised, folder)
    finally:
        source.unlink(missing_ok=True)
        quantised.unlink(missing_ok=True)
    save_bpe(tokenizer, folder)
    texts = list(PROBE_TEXTS)
    with torch.inference_mode():
        reference = model.encode_text(tokenizer(texts), normalize=True).float().numpy()
    meta = query_tower.TowerMeta(
        fingerprint=fingerprint,
        context_length=tokenizer.context_length,
        sot=tokenizer.sot_token_id,
        eot=tokenizer.eot_token_id,
        dim=reference.shape[1],
        cosine_min=0.0,
        runtime=query_tower.runtime_version(),
    )
    tower = query_tower.QueryTower(folder, meta, threads=1)
    if not np.array_equal(_padded(tokenizer(texts)), tower.tokens(texts)):
        raise ValueError("the fast tokenizer does not reproduce open_clip's tokens")
    meta = replace(meta, cosine_min=round(float((tower.encode_texts(texts) * reference).sum(1).min()), 5))
    meta.write(folder)
    return meta


def _padded(tokens: torch.Tensor) -> np.ndarray:
    """open_clip's (n, 77) rows cut after the batch's last end token, as the query tower pads them."""
    return tokens[:, : int(tokens.argmax(dim=1).max()) + 1].numpy()
