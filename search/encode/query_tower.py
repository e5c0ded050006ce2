"""The text tower for queries, without torch: an int8 ONNX graph over a dynamic sequence length and
CLIP's byte-pair encoding in the `tokenizers` library.

A query is a few words, so encoding it is bound by reading the tower's weights, not by arithmetic:
int8 weights are a quarter of float32's, and a graph as long as the query (not CLIP's 77 positions)
does a tenth of the work. ViT-B-32's text tower, one short query on 2 cores: about 5 ms, against 25 ms
for trimmed float32 torch. The export (search/encode/onnx_export.py) checks the tokenizer against open_clip's
and the vectors against torch float32 (`cosine_min`); a tower under MIN_COSINE is never used.

This module imports neither torch nor open_clip: a one-shot search (search/query/quick.py) loads it alone.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

FOLDER = "query-tower"  # its name beside the other ONNX towers and inside an index folder
GRAPH, VOCAB, MERGES, META = "text.int8.onnx", "vocab.json", "merges.txt", "meta.json"
WEIGHTS = GRAPH + ".data"  # the graph's initialisers, apart: ONNX Runtime loads them faster
FILES = (GRAPH, WEIGHTS, VOCAB, MERGES)
FORMAT = 3  # bump when the graph, tokenizer or meta change
WORDS = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""  # open_clip's, less its specials
END = "</w>"  # the end of a word, in open_clip's tokens
MIN_COSINE = 0.99  # against torch float32 on the export's probe texts


@dataclass(frozen=True)
class TowerMeta:
    fingerprint: str  # the model's (search/encode/models.py): a tower only serves the index of its own model
    context_length: int
    sot: int
    eot: int
    dim: int
    cosine_min: float  # the lowest cosine to torch float32 over the probe texts at export
    runtime: str  # the ONNX Runtime version that optimised the graph (it may hold that version's fusions)
    format: int = FORMAT

    @classmethod
    def read(cls, folder: Path) -> TowerMeta | None:
        return read_record(cls, folder / META)

    def write(self, folder: Path) -> None:
        write_record(self, folder / META)  # written last: a folder with its meta is whole


def read_record(cls: type, path: Path):
    """A dataclass from its JSON file; None when the file is missing, unreadable or of another shape."""
    try:
        return cls(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(record: object, path: Path) -> None:
    """A dataclass as JSON, replaced atomically."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    os.replace(tmp, path)


def current(folder: Path, fingerprint: str) -> TowerMeta | None:
    """The folder's meta when it holds a whole tower of this format for this model and this ONNX
    Runtime, checked or not."""
    meta = TowerMeta.read(folder)
    if meta is None or meta.format != FORMAT or meta.fingerprint != fingerprint:
        return None
    if meta.runtime != runtime_version():
        return None
    return meta if all((folder / name).is_file() for name in FILES) else None


def runtime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def usable(folder: Path, fingerprint: str) -> TowerMeta | None:
    """The folder's meta when it holds a current tower for this model that passed its check."""
    meta = current(folder, fingerprint)
    return meta if meta is not None and meta.cosine_min >= MIN_COSINE else None


def copy(source: Path, target: Path) -> None:
    """Place a tower's files in `target` (an index folder's), meta last so a reader never sees half."""
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
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


def unit(arr: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 in float32, as every encoder's output is (fp16 and int8 towers return
    vectors whose norm is off by about 1e-3)."""
    arr = arr.astype(np.float32, copy=False)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


def clean(text: str) -> str:
    """open_clip's cleaning (ftfy, HTML entities twice, whitespace, lower case). ftfy changes no text
    that is printable ASCII without entities, so it is only imported for other text."""
    if not (text.isascii() and text.isprintable() and "&" not in text):
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class QueryTower:
    """Query texts in, (n, dim) float32 unit vectors out.

    The ONNX Runtime session starts in a thread (it releases the GIL while it initialises) and the
    tokenizer loads on first use (it holds the GIL): whatever the caller does in between, such as a
    one-shot search importing FAISS and opening its index, overlaps the session's start. `whole`: the
    whole tokenizer (0.15 s to load), else one for each call's texts (search/encode/query_tower.py,
    `tokenizer`): a process that encodes one query pays for its own words."""

    def __init__(self, folder: Path, meta: TowerMeta, threads: int | None = None, whole: bool = True):
        self.folder = folder
        self.meta = meta
        self.whole = whole
        pool = ThreadPoolExecutor(1, thread_name_prefix="mmsearch-query-tower")
        self._session = pool.submit(session, folder / GRAPH, threads or len(os.sched_getaffinity(0)))
        pool.shutdown(wait=False)  # its thread ends with the session made

    @property
    def session(self):
        return self._session.result()

    @cached_property
    def tokenizer(self):
        return tokenizer(self.folder, self.meta)

    def tokenizer_for(self, texts: list[str]):
        return self.tokenizer if self.whole else tokenizer(self.folder, self.meta, texts)

    @classmethod
    def open(
        cls, folder: Path, fingerprint: str, threads: int | None = None, whole: bool = True
    ) -> QueryTower | None:
        meta = usable(folder, fingerprint)
        return None if meta is None else cls(folder, meta, threads, whole)

    def tokens(self, texts: list[str], length: int | None = None) -> np.ndarray:
        """open_clip's token rows (start, text, end; cut to the context with the end token kept last),
        zero-padded to `length`, by default only to the longest row: the query tower is causal and pools
        at the end token."""
        rows = self._rows(texts)
        out = np.zeros((len(rows), length or max(len(r) for r in rows)), np.int64)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = ids
        return out

    def _rows(self, texts: list[str]) -> list[list[int]]:
        m, cleaned = self.meta, [clean(text) for text in texts]
        bpe, rows = self.tokenizer_for(cleaned), []
        for text in cleaned:
            ids = [m.sot, *bpe.encode(text, add_special_tokens=False).ids, m.eot][: m.context_length]
            ids[-1] = m.eot
            rows.append(ids)
        return rows

    def token_count(self, text: str) -> int:
        """Tokens of `text` without the start and end markers, as open_clip's tokenizer counts them."""
        text = clean(text)
        return len(self.tokenizer_for([text]).encode(text, add_special_tokens=False).ids)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.meta.dim), np.float32)
        return self.session.run(None, {"tokens": self.tokens(texts)})[0]

    def encode_each(self, texts: list[str]) -> np.ndarray:
        """Each text alone, as a query is encoded: int8 activations are quantised per batch and rows are
        padded to the batch's longest, so in a batch a text gets a slightly different vector. Kept in the
        tower's folder for the next process: the query cohort of search/query/fusion.py would cost a
        one-shot search a hundred encodings on every run."""
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        path = self.folder / f"each-{key}.npy"
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass
        rows = [np.array([ids], np.int64) for ids in self._rows(texts)]  # one tokenizer for all
        out = np.concatenate([self.session.run(None, {"tokens": row})[0] for row in rows])
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        try:
            with part.open("wb") as f:
                np.save(f, out)
            part.replace(path)
        except OSError:  # a read-only folder: encoded again next time
            part.unlink(missing_ok=True)
        return out


def tokenizer(folder: Path, meta: TowerMeta, texts: list[str] | None = None):
    """open_clip's BPE in `tokenizers`: the same vocabulary, merges and word pattern, its start and end
    tokens special; cleaning stays in `clean`, as open_clip does it before its regex. With `texts`
    (cleaned), only the tokens and merges their words can reach: a merge joins two pieces of one word,
    so what it makes is in that word's bytes. Building all 49k tokens and merges takes 0.15 s; a few
    words' take a few milliseconds, which a one-shot search pays instead (tests/test_backends.py holds
    the two equal)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    split = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(WORDS), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    specials = (meta.sot, meta.eot)
    if texts is None:
        bpe = models.BPE.from_file(
            str(folder / VOCAB), str(folder / MERGES), end_of_word_suffix=END, continuing_subword_prefix=""
        )
    else:  # byte-level pieces never hold a space: joined by one, no token spans two
        pieces = " ".join(p for text in texts for p, _ in split.pre_tokenize_str(text))
        vocab = {
            token: i
            for token, i in json.loads((folder / VOCAB).read_text("utf-8")).items()
            if token.removesuffix(END) in pieces or i in specials
        }
        with (folder / MERGES).open(encoding="utf-8") as lines:
            next(lines)  # the version line
            merges = [
                tuple(pair)
                for line in lines
                if (pair := line.split())[0] + pair[1].removesuffix(END) in pieces
            ]
        bpe = models.BPE(vocab, merges, end_of_word_suffix=END, continuing_subword_prefix="")
    out = Tokenizer(bpe)
    out.pre_tokenizer = split
    out.add_special_tokens([bpe.id_to_token(i) for i in specials])
    return out


def optimise(source: Path, folder: Path) -> None:
    """ONNX Runtime's offline optimisation of `source` into the folder's GRAPH and WEIGHTS, at the
    extended level (fusions for the CPU provider, no layouts for one CPU): a session then starts in
    about half the time, which a one-shot search pays on every run."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(folder / GRAPH)
    opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
    opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
