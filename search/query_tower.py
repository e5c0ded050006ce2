"""The text tower for queries, without torch: an int8 ONNX graph over a dynamic sequence length and
CLIP's byte-pair encoding in the `tokenizers` library.

A query is a few words, so encoding it is bound by reading the tower's weights, not by arithmetic:
int8 weights are a quarter of float32's, and a graph as long as the query (not CLIP's 77 positions)
does a tenth of the work. ViT-B-32's text tower, one short query on 2 cores: about 5 ms, against 25 ms
for trimmed float32 torch. The export (search/onnx_backend.py) checks the tokenizer against open_clip's
and the vectors against torch float32 (`cosine_min`); a tower under MIN_COSINE is never used.

This module imports neither torch nor open_clip: a one-shot search (search/quick.py) loads it alone.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FOLDER = "query-tower"  # its name beside the other ONNX towers and inside an index folder
GRAPH, TOKENIZER, META = "text.int8.onnx", "tokenizer.json", "meta.json"
FORMAT = 1  # bump when the graph, tokenizer or meta change
MIN_COSINE = 0.99  # against torch float32 on the export's probe texts


@dataclass(frozen=True)
class TowerMeta:
    fingerprint: str  # the model's (search/models.py): a tower only serves the index of its own model
    context_length: int
    sot: int
    eot: int
    dim: int
    cosine_min: float  # the lowest cosine to torch float32 over the probe texts at export
    format: int = FORMAT

    @classmethod
    def read(cls, folder: Path) -> TowerMeta | None:
        try:
            return cls(**json.loads((folder / META).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, folder: Path) -> None:
        tmp = folder / f"{META}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, folder / META)  # written last: a folder with its meta is whole


def current(folder: Path, fingerprint: str) -> TowerMeta | None:
    """The folder's meta when it holds a whole tower of this format for this model, checked or not."""
    meta = TowerMeta.read(folder)
    if meta is None or meta.format != FORMAT or meta.fingerprint != fingerprint:
        return None
    return meta if (folder / GRAPH).is_file() and (folder / TOKENIZER).is_file() else None


def usable(folder: Path, fingerprint: str) -> TowerMeta | None:
    """The folder's meta when it holds a current tower for this model that passed its check."""
    meta = current(folder, fingerprint)
    return meta if meta is not None and meta.cosine_min >= MIN_COSINE else None


def copy(source: Path, target: Path) -> None:
    """Place a tower's files in `target` (an index folder's), meta last so a reader never sees half."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (GRAPH, TOKENIZER):
        tmp = target / f"{name}.tmp-{os.getpid()}"
        shutil.copyfile(source / name, tmp)
        os.replace(tmp, target / name)
    shutil.copyfile(source / META, target / f"{META}.tmp-{os.getpid()}")
    os.replace(target / f"{META}.tmp-{os.getpid()}", target / META)


def session(path: Path, threads: int):
    """A CPU ONNX Runtime session with every graph optimisation; idle threads sleep instead of
    spinning, since other work (decoding, the server's threads) shares the cores."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def clean(text: str) -> str:
    """open_clip's cleaning (ftfy, HTML entities twice, whitespace, lower case). ftfy changes no text
    that is printable ASCII without entities, so it is only imported for other text."""
    if not (text.isascii() and text.isprintable() and "&" not in text):
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class QueryTower:
    """Query texts in, (n, dim) float32 unit vectors out."""

    def __init__(self, folder: Path, meta: TowerMeta, threads: int | None = None):
        from tokenizers import Tokenizer

        self.folder = folder
        self.meta = meta
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        self.session = session(folder / GRAPH, threads or len(os.sched_getaffinity(0)))

    @classmethod
    def open(cls, folder: Path, fingerprint: str, threads: int | None = None) -> QueryTower | None:
        meta = usable(folder, fingerprint)
        return None if meta is None else cls(folder, meta, threads)

    def tokens(self, texts: list[str]) -> np.ndarray:
        """open_clip's token rows (start, text, end; cut to the context with the end token kept last),
        zero-padded only to the longest row: the tower is causal and pools at the end token."""
        m = self.meta
        rows = []
        for text in texts:
            ids = [m.sot, *self.tokenizer.encode(clean(text), add_special_tokens=False).ids, m.eot]
            ids = ids[: m.context_length]
            ids[-1] = m.eot
            rows.append(ids)
        out = np.zeros((len(rows), max(len(r) for r in rows)), np.int64)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = ids
        return out

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.meta.dim), np.float32)
        return self.session.run(None, {"tokens": self.tokens(texts)})[0]
