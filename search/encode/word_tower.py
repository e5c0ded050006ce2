"""The text model (search/encode/sentences.py) as an ONNX graph, run without torch: the `tokenizers`
library's WordPiece, ONNX Runtime, then the model's mean pooling and L2 norm in numpy.

Two uses. The float32 graph is the text model itself wherever it runs on the CPU (`OnnxSentences`):
the torch model exports it once into the cache and checks it against itself (sentences.exported: cosine
at least CHECK_MIN on PROBE_TEXTS), and later processes load it in a quarter of a second without torch,
so an index with transcripts gets the one-shot search (search/query/quick.py) too. And all-MiniLM-L6-v2
being the only real model with real weights here, int8 is checked against float32 on it (`mmsearch bench
text-int8`, docs/benchmarks.md); int8 falls short of CHECK_MIN (cosine min 0.983): not used for search.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mmsearch.encode.query_tower import read_record, runtime_version, session

log = logging.getLogger(__name__)

FP32, INT8, TOKENIZER, META = "text.fp32.onnx", "text.int8.onnx", "tokenizer.json", "meta.json"
FOLDER = "word-tower"  # its name inside an index folder
FILES = (FP32, TOKENIZER)
FORMAT = 2  # bump when the graph, tokenizer, meta or what the text model reads (plain) change
CHECK_MIN = 0.9999  # cosine of the float32 graph's vectors with the torch model's, each probe text
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length; longer texts are cut, as sentence-transformers does
BATCH = 64  # sentence-transformers' default


# What the export is checked on: queries, transcripts, other scripts, and one text past MAX_TOKENS.
PROBE_TEXTS = [
    "a red circle",
    "ask not what your country can do for you",
    "the lighthouse keeper painted the door bright yellow",
    "what did she say about the quarterly numbers?",
    "Welcome to the volcano museum, where the lava flows are explained.",
    "SKU-12345/XL size 42.5 cm",
    "l'été à Paris, café crème",
    "東京の夜景",
    "smile 😀 please",
    "um, so, yeah",
    " ".join(["and so my fellow citizens we said it again and again for a long time"] * 25),
]


# Punctuation at a word's edge. Whisper guesses it ("Front, left." on one CPU, "Front. Left." on another)
# and a short text's vector moves more with it than with its words: "front right" is 0.884 from "Front,
# right." and 0.907 from "Front left.", but 1.000 and 0.928 without the punctuation. Inside a word it
# stays: we're, 42.5, SKU-12345/XL.
EDGE_PUNCTUATION = re.compile(r"(?<!\w)[^\w\s]+|[^\w\s]+(?!\w)")


def plain(text: str) -> str:
    """What the text model reads of a text: its words, without the punctuation at their edges."""
    return " ".join(EDGE_PUNCTUATION.sub(" ", text).split()) or text


@dataclass(frozen=True)
class WordTowerMeta:
    name: str  # the text model's (sentences.short_name)
    fingerprint: str  # the text model's: an index only takes words from its own text model
    dim: int
    max_tokens: int
    cosine_min: float  # the lowest cosine to the torch model over PROBE_TEXTS, at export
    runtime: str | None  # the ONNX Runtime version that checked it
    format: int = FORMAT


def usable(folder: Path, fingerprint: str | None = None) -> WordTowerMeta | None:
    """The folder's meta when it holds a whole, checked float32 graph (of this text model, if given)."""
    meta = read_record(WordTowerMeta, folder / META)
    if meta is None or meta.format != FORMAT or meta.cosine_min < CHECK_MIN:
        return None
    if meta.runtime != runtime_version() or (fingerprint is not None and meta.fingerprint != fingerprint):
        return None
    return meta if all((folder / name).is_file() for name in FILES) else None


def cache_folder(root: Path, name: str) -> Path:
    return root / "word-towers" / hashlib.sha256(name.encode()).hexdigest()[:16]


def copy(source: Path, target: Path) -> None:
    """Place a tower in `target` (an index folder's), linked where the file system allows, meta last so a
    reader never sees half of one."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (*FILES, META):
        tmp = target / f"{name}.tmp-{os.getpid()}"
        try:
            os.link(source / name, tmp)
        except OSError:
            shutil.copyfile(source / name, tmp)
        os.replace(tmp, target / name)


def export(model_folder: Path, out: Path) -> Path:
    """A sentence-transformers folder (a BERT-like transformer with mean pooling) as ONNX graphs in `out`:
    float32, and int8 (`quantize`)."""
    from transformers import AutoModel

    pooling = json.loads((model_folder / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{model_folder} does not pool by the mean of its tokens")
    out.mkdir(parents=True, exist_ok=True)
    export_graph(AutoModel.from_pretrained(model_folder).eval(), out / FP32)
    quantize(out / FP32, out / INT8)
    shutil.copy(model_folder / TOKENIZER, out / TOKENIZER)
    return out


def export_graph(model, path: Path) -> None:
    """A transformers model's token vectors as a float32 ONNX graph over any batch and length."""
    import torch

    class Tokens(torch.nn.Module):  # the transformer's token vectors, by keyword as it wants them
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            given = {"input_ids": input_ids, "attention_mask": attention_mask}
            return self.model(**given, token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing a Python model
        torch.onnx.export(
            Tokens(),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            path,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["tokens"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "tokens": axes},
            opset_version=17,
            dynamo=False,
        )


def quantize(source: Path, target: Path, per_channel: bool = True) -> None:
    """int8 weights by ONNX Runtime's dynamic quantisation. Per channel (a scale for each output column)
    on all-MiniLM-L6-v2: cosine with float32 at least 0.983, same first neighbour for 92.9% of sentences;
    one scale per tensor: 0.900 and 78.8% (`mmsearch bench text-int8` measures both)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mmsearch.encode.onnx_export import quiet_quantiser

    with quiet_quantiser():
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=per_channel)


class WordTower:
    """Unit float32 vectors for texts from one exported graph (FP32 or INT8). The ONNX Runtime session
    starts in a thread, as the query tower's does, so a one-shot search overlaps it with other work."""

    def __init__(
        self, folder: Path, graph: str = INT8, threads: int | None = None, max_tokens: int = MAX_TOKENS
    ):
        self.folder = folder
        self.max_tokens = max_tokens
        pool = ThreadPoolExecutor(1, thread_name_prefix="mmsearch-word-tower")
        self._session = pool.submit(session, folder / graph, threads or len(os.sched_getaffinity(0)))
        pool.shutdown(wait=False)

    @cached_property
    def tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.no_padding()
        return tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """In batches of texts of like length (sentence-transformers' order), each padded to its longest."""
        rows = [b.ids for b in self.tokenizer.encode_batch(list(texts))]
        order = np.argsort([-len(r) for r in rows], kind="stable")
        out = np.zeros((len(rows), 0), np.float32)
        for start in range(0, len(rows), BATCH):
            part = order[start : start + BATCH]
            vectors = self._pooled([rows[i] for i in part])
            if not out.shape[1]:
                out = np.zeros((len(rows), vectors.shape[1]), np.float32)
            out[part] = vectors
        return out

    def _pooled(self, rows: list[list[int]]) -> np.ndarray:
        """Mean of the token vectors, then unit length: the model's pooling and normalisation."""
        ids = np.zeros((len(rows), max(len(r) for r in rows)), np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)], mask[i, : len(row)] = row, 1
        given = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        tokens = self._session.result().run(None, given)[0]
        mean = (tokens * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


class OnnxSentences:
    """The text model on its checked float32 graph: what SentenceEncoder gives, without torch."""

    def __init__(self, folder: Path, meta: WordTowerMeta, threads: int | None = None):
        self.folder = folder
        self.meta = meta
        self.name = meta.name
        self.dim = meta.dim
        self.fingerprint = meta.fingerprint
        self.tower = WordTower(folder, FP32, threads, meta.max_tokens)

    @classmethod
    def open(cls, folder: Path, fingerprint: str | None = None) -> OnnxSentences | None:
        meta = usable(folder, fingerprint)
        return None if meta is None else cls(folder, meta)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self.tower.encode([plain(t) for t in texts])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)  # one reading for queries and passages

    def encode_kept(self, texts: Sequence[str]) -> np.ndarray:
        """`encode`, kept in the tower's folder for the next process (the query cohort of
        search/query/fusion.py would cost a one-shot search a second on every run); the engine and the
        one-shot search read the same vectors."""
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        path = self.folder / f"kept-{key}.npy"
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass
        out = self.encode(texts)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        try:
            with part.open("wb") as f:
                np.save(f, out)
            part.replace(path)
        except OSError:  # a read-only folder: encoded again next time
            part.unlink(missing_ok=True)
        return out

    def record(self) -> dict:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint}
