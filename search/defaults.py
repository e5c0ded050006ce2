"""Setting defaults that code without pydantic needs too: search/config.py starts from them, and the
one-shot search (search/quick.py), which reads no settings, searches with them."""

from __future__ import annotations

from dataclasses import dataclass

CANDIDATES = 100  # first-stage hits of an approximate index, rescored exactly (SearchSettings)
NPROBE = 32  # IVF lists visited per query (IndexSettings)
EF_SEARCH = 128  # HNSW candidate-list size per query (IndexSettings)
GPU = "auto"  # FAISS on a GPU when there is one (IndexSettings)


@dataclass(frozen=True)
class IndexSearchDefaults:
    """What searching a saved index reads of IndexSettings, at the defaults."""

    nprobe: int = NPROBE
    ef_search: int = EF_SEARCH
    gpu: str = GPU
