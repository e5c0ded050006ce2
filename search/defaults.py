"""Setting defaults that code without pydantic needs too: search/config.py starts from them, and the
one-shot search (search/query/quick.py), which reads no settings, searches with them."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_INDEX_DIR = Path("mmsearch-index")
INDEX_DIR_ENV = "MMSEARCH_INDEX_DIR"
# The settings groups a text search never reads (search/config.py): set or not, its hits are the same. The
# model, the index, search and the database (MMSEARCH_MODEL__, _INDEX__, _SEARCH__, _DATABASE_URL) are.
UNRELATED = tuple(
    f"MMSEARCH_{group}__"
    for group in ("INDEXER", "VIDEO", "SPEECH", "OCR", "FACES", "SAFETY", "ANSWER", "API")
)
EXPLICIT = (  # NudeNet's classes that flag a picture as explicit by default (search/encode/safety.py)
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)
CATALOG = "catalog.sqlite"  # the default catalog: SQLite inside the index folder
CANDIDATES = 100  # first-stage hits of an approximate index, rescored exactly (SearchSettings)
CANDIDATES_GROW_FROM = 1_000_000  # vectors past which an approximate index rescores more candidates
NPROBE = 32  # IVF lists visited per query (IndexSettings)
EF_SEARCH = 128  # HNSW candidate-list size per query (IndexSettings)
GPU = "auto"  # FAISS on a GPU when there is one (IndexSettings)
GOOD_MARGIN = 0.05  # a text hit's cohort margin under this is weak (SearchSettings, query/relevance.py)
TEXT_GAP = 0.2  # a text hit this far below the best is weak
PICTURE_GAP = 0.15  # a picture query's hit this far below the best is weak
MAX_K = 1000  # most hits one search may return (SearchSettings; the one-shot search's bound too)
MAX_PICTURE_BYTES = 20 * 2**20  # larger query pictures are refused (SearchSettings)
MAX_PICTURE_PIXELS = 40_000_000  # query pictures with more pixels are refused
MAX_IMAGE_PIXELS = 100_000_000  # larger pictures are refused as bombs (IndexerSettings)
MAX_FILE_BYTES = 200 * 2**20  # larger picture files are refused (IndexerSettings)


@dataclass(frozen=True)
class IndexSearchDefaults:
    """What searching a saved index reads of IndexSettings, at the defaults."""

    nprobe: int = NPROBE
    ef_search: int = EF_SEARCH
    gpu: str = GPU


def candidates_for(n: int, base: int = CANDIDATES) -> int:
    """First-stage hits to rescore in an approximate index of n vectors: `base` up to a million, and
    one more `base` for each tenfold past it. 4-bit PQ codes order a denser neighbourhood less well:
    with the top 100, recall@10 after rescoring is 0.97 at 1M but 0.91 at 10M; the top 200 give 0.97
    at 10M for 0.1 ms more (docs/benchmarks.md)."""
    if n <= CANDIDATES_GROW_FROM:
        return base
    return base * (1 + math.ceil(math.log10(n / CANDIDATES_GROW_FROM)))


LOCAL_VLM = "HuggingFaceTB/SmolVLM-256M-Instruct"  # the local answer backend's model (AnswerSettings)


def default_cache_dir() -> Path:
    """Where downloaded and converted models are kept (ModelSettings.cache_dir): the user's cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmsearch"


def index_dir_in_env() -> Path:
    """Settings.index_dir as the environment sets it, for the one-shot search, which reads no Settings."""
    return Path(os.environ.get(INDEX_DIR_ENV, DEFAULT_INDEX_DIR))


def search_settings_in_env() -> bool:
    """Whether an mmsearch setting that can change a text search's hits is set in the environment
    (pydantic-settings ignores case): then the one-shot search declines and Settings decide."""
    names = (k.upper() for k in os.environ)
    return any(
        k.startswith("MMSEARCH_") and k != INDEX_DIR_ENV and not k.startswith(UNRELATED) for k in names
    )
