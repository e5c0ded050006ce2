"""Index a folder: plan against the catalog -> decode ahead in worker threads -> encode in batches ->
commit catalog rows and vectors together per batch.

Decoding (file read, hash, JPEG decode at reduced scale, preprocessing) runs in a thread pool ahead of
the model, so the encoder always has a batch ready; Pillow, hashlib and torch release the GIL while they
work. Video and audio files are read by media worker processes (keyframes, sound, Whisper transcripts;
see indexer/isolate.py), whose thread just waits for the answer. Every batch is one catalog transaction,
and a file's segments are always written together, so a killed run loses at most the batch in flight, and
the next run skips what was committed (size + mtime, then content hash) and finishes the rest.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.config import (
    FaceSettings,
    IndexerSettings,
    OcrSettings,
    SafetySettings,
    SpeechSettings,
    VideoSettings,
)
from mmsearch.encode import faces as face_finding
from mmsearch.encode import quality
from mmsearch.encode.base import EncoderBase
from mmsearch.encode.faces import FaceReader
from mmsearch.encode.images import decode_image, is_animated_gif, is_raw
from mmsearch.encode.safety import ExplicitCheck
from mmsearch.errors import MediaError
from mmsearch.hits import IMAGE_SPACE, INDEXED, TEXT_SPACE
from mmsearch.indexer import ocr
from mmsearch.indexer.isolate import MediaWorkers
from mmsearch.indexer.sources import ALL_KINDS, SourceFile, media_suffix, walk
from mmsearch.indexer.worker import MediaExtract, MediaRequest
from mmsearch.storage.schema import ItemRecord, KnownFile, SegmentRecord
from mmsearch.storage.store import Store
from mmsearch.user_files import content_hash, read_file

KEYFRAME_THUMBNAIL_PX = 384

ProgressFn = Callable[[int, int], None]


@dataclass
class IndexReport:
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    removed: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "encode": 0.0, "write": 0.0})
    errors: list[tuple[str, str]] = field(default_factory=list)
    passed_over: Counter[str] = field(default_factory=Counter)  # files not indexed: extension -> count

    def count(self, records: list[ItemRecord], touched: list[tuple[int, int]]) -> None:
        """Tally a committed batch: indexed and failed files, and unchanged ones as skipped."""
        for rec in records:
            if rec.error is None:
                self.indexed += 1
            else:
                self.failed += 1
                self.errors.append((rec.uri, rec.error))
        self.skipped += len(touched)


@dataclass(frozen=True)
class Preprocessing:
    """What decoding a picture uses of an encoder, small enough to ship to Ray's decode tasks."""

    preprocess: Callable[[Image.Image], np.ndarray]
    image_size: int

    @classmethod
    def of(cls, encoder: EncoderBase) -> Preprocessing:
        return cls(encoder.preprocess, encoder.image_size)


@dataclass
class Part:
    """A segment still to encode: its record, and what its vector is made from: a picture's tensor for
    the picture tower, or words for the text model (text read in a picture is embedded repaired and
    stored as read)."""

    segment: SegmentRecord
    made_from: np.ndarray | str


@dataclass
class Decoded:
    """A worker's result for one file: its segments to encode, an unchanged hash, or an error."""

    src: SourceFile
    content_hash: str | None = None
    parts: list[Part] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    meta: dict | None = None
    fields: dict | None = None  # user metadata (a manifest row)
    error: str | None = None
    unchanged_id: int | None = None  # catalog id of a file whose content hash proved unchanged
    kind: str | None = None  # what the file's streams say it is, where that is not its extension's kind
    keywords: list[str] = field(default_factory=list)  # text read, repaired where it differs from the read
    read: list[ocr.Line] = field(default_factory=list)  # lines read in a picture, cut into segments later
    seconds: float = 0.0


@dataclass(frozen=True)
class _Media:
    """What reading video and audio needs, besides the file."""

    workers: MediaWorkers
    video: VideoSettings
    speech: SpeechSettings


@dataclass
class _Plan:
    todo: list[SourceFile]
    skipped: int
    removed: list[str]


def plan(files: Iterable[SourceFile], known: dict[str, KnownFile], root: Path, prune: bool) -> _Plan:
    """New and changed files to process; files whose size and mtime match the catalog are skipped."""
    todo, skipped, seen = [], 0, set()
    for f in files:
        seen.add(f.uri)
        k = known.get(f.uri)
        if k is not None and k.size == f.size and k.mtime_ns == f.mtime_ns:
            skipped += 1
        else:
            todo.append(f)
    removed = []
    if prune:
        prefix = str(root.resolve())
        removed = [
            u for u in known if u not in seen and (u == prefix or u.startswith(prefix.rstrip("/") + "/"))
        ]
    return _Plan(todo, skipped, removed)


def decode_file(
    src: SourceFile,
    known: KnownFile | None,
    encoder: EncoderBase | Preprocessing,
    cfg: IndexerSettings,
    media: _Media | None = None,
    reader: ocr.TextReader | None = None,
    faces: FaceReader | None = None,
    safety: ExplicitCheck | None = None,
) -> Decoded:
    """One file read, hashed and decoded for the encoder, or its error (video and audio need `media`). An
    animated GIF goes to the media workers as a short video, when there are any. `reader` reads the text
    written in pictures, `faces` finds the faces in them, `safety` looks for explicit content."""
    start = time.perf_counter()
    out = Decoded(src)
    try:
        if src.kind == "image":
            data = read_file(src.path, cfg.max_file_bytes)
            gif = media is not None and media_suffix(src.path) == ".gif"
            if gif and is_animated_gif(data, cfg.max_image_pixels):
                _decode_media(out, known, encoder, cfg, media, reader, faces, safety)
            else:
                _decode_image(out, data, known, encoder, cfg, reader, faces, safety)
        else:
            assert media is not None and isinstance(encoder, EncoderBase), "media files need media workers"
            _decode_media(out, known, encoder, cfg, media, reader, faces, safety)
    except MediaError as exc:
        out.error = str(exc)
    except OSError as exc:
        out.error = f"cannot read file: {exc.strerror or exc}"
    out.seconds = time.perf_counter() - start
    return out


def _unchanged(out: Decoded, known: KnownFile | None) -> bool:
    if known is not None and known.status == INDEXED and known.content_hash == out.content_hash:
        out.unchanged_id = known.id
        return True
    return False


def _decode_image(
    out: Decoded,
    data: bytes,
    known: KnownFile | None,
    encoder: EncoderBase | Preprocessing,
    cfg: IndexerSettings,
    reader: ocr.TextReader | None = None,
    faces: FaceReader | None = None,
    safety: ExplicitCheck | None = None,
) -> None:
    out.content_hash = hashlib.sha256(data).hexdigest()
    if _unchanged(out, known):
        return
    side = max(
        encoder.image_size, reader.settings.max_side if reader else 0, face_finding.picture_side(faces)
    )
    img = decode_image(data, cfg.max_image_pixels, min_side=side, raw=is_raw(out.src.path))
    out.width, out.height = img.width, img.height
    out.fields = (img.fields | (safety.fields([img.image]) if safety else {})) or None
    out.meta = {"look": quality.look(img.image)}  # the best shot of a stack (search/storage/stacks.py)
    picture = SegmentRecord(IMAGE_SPACE, faces=faces.read(img.image, img.width) if faces else [])
    out.parts = [Part(picture, encoder.preprocess(img.image))]
    if reader is not None:  # cut where the text model is (encode_records): a Ray decode task has none
        out.read = reader.read(img.image, img.width, img.height)


def _take_written(
    out: Decoded, lines: list[ocr.Line], encoder: EncoderBase, keyframe: dict, shown: dict | None = None
) -> dict:
    """Each block of lines read in a picture becomes text-space segments, cut to fit the text model;
    each keeps the boxes of the lines it holds and, on a video, the `keyframe`'s time and thumbnail. It is
    stored as read and embedded repaired (C0FFEE is found by "coffee"). A piece `shown` on the keyframe
    before (segments by ocr.key) is lengthened instead of stored twice. Returns the pieces on this one."""
    now = {}
    for block in ocr.blocks(lines):
        pieces = encoder.split_text(" ".join(line.text for line in block))
        for piece in pieces:
            key = ocr.key(piece)
            if shown and key in shown:
                now[key] = shown[key]
                now[key].t_end = keyframe["t_end"]
                continue
            held = [line.stored() for line in block if len(pieces) == 1 or line.text in piece]
            now[key] = SegmentRecord(TEXT_SPACE, **keyframe, text=piece, written=held or None)
            repaired = ocr.repaired(piece)
            if repaired != piece:  # full text finds EX1T by "exit" too
                out.keywords.append(repaired)
            out.parts.append(Part(now[key], repaired))
    return now


def _decode_media(
    out: Decoded,
    known: KnownFile | None,
    encoder: EncoderBase,
    cfg: IndexerSettings,
    media: _Media,
    reader: ocr.TextReader | None = None,
    faces: FaceReader | None = None,
    safety: ExplicitCheck | None = None,
) -> None:
    src = out.src
    if src.size == 0:
        raise MediaError("empty file")
    if src.size > cfg.max_media_bytes:
        raise MediaError(f"file is {src.size} bytes, over the limit of {cfg.max_media_bytes}")
    out.content_hash = content_hash(src.path)
    if _unchanged(out, known):
        return
    request = MediaRequest(
        str(src.path),
        media.video,
        media.speech,
        frame_side=max(
            encoder.image_size, KEYFRAME_THUMBNAIL_PX, ocr_frame_side(reader), face_finding.frame_side(faces)
        ),
        thumbnail_px=KEYFRAME_THUMBNAIL_PX,
    )
    with media.workers.one() as worker:
        extract = worker.extract(request)
    _take_extract(out, extract, encoder, reader, faces, safety)


def ocr_frame_side(reader: ocr.TextReader | None) -> int:
    """The short side keyframes are decoded at for reading their text: a 16:9 frame's long side is then
    about the reader's max_side."""
    return 0 if reader is None else reader.settings.max_side * 9 // 16


def _take_extract(
    out: Decoded,
    extract: MediaExtract,
    encoder: EncoderBase,
    reader: ocr.TextReader | None = None,
    faces: FaceReader | None = None,
    safety: ExplicitCheck | None = None,
) -> None:
    """Keyframes become image-space segments (with the faces on them, and the text read on them as
    text-space ones lasting while it is on screen); utterances, cut to fit the text tower, text-space ones."""
    out.width, out.height, out.meta, out.kind = extract.width, extract.height, extract.meta, extract.kind
    fields = extract.meta.get("place", {}) | (
        {"taken_at": extract.meta["created"]} if extract.meta.get("created") else {}
    )
    if safety is not None and extract.scenes:
        fields |= safety.fields([Image.fromarray(scene.image) for scene in extract.scenes])
    out.fields = fields or None
    for scene, thumbnail in zip(extract.scenes, extract.thumbnails, strict=True):
        frame = Image.fromarray(scene.image)
        seen = faces.read(frame, extract.width) if faces else []
        keyframe = SegmentRecord(IMAGE_SPACE, scene.t_start, scene.t_end, thumbnail=thumbnail, faces=seen)
        out.parts.append(Part(keyframe, encoder.preprocess(frame)))
    shown: dict = {}
    for scene, thumbnail in zip(extract.scenes, extract.thumbnails, strict=True) if reader else []:
        lines = reader.read(Image.fromarray(scene.image), extract.width or 0, extract.height or 0)
        keyframe = {"t_start": scene.t_start, "t_end": scene.t_end, "thumbnail": thumbnail}
        shown = _take_written(out, lines, encoder, keyframe, shown)
    for said in extract.speech:
        pieces = list(_pieces(encoder.split_text(said.text), said.t_start, said.t_end))
        for n, (text, t_start, t_end) in enumerate(pieces):
            last = n == len(pieces) - 1
            words = [
                list(w)
                for w in said.words
                if t_start <= (w[0] + w[1]) / 2 < t_end or (last and w[0] >= t_start)
            ]
            piece = SegmentRecord(TEXT_SPACE, t_start, t_end, text, words=words or None)
            out.parts.append(Part(piece, text))


def _pieces(pieces: list[str], t_start: float, t_end: float) -> Iterator[tuple[str, float, float]]:
    """Each piece with the part of the utterance's time span its characters take up."""
    total = sum(len(p) for p in pieces) or 1
    done = 0
    for piece in pieces:
        a, done = done, done + len(piece)
        span = t_end - t_start
        yield piece, round(t_start + span * a / total, 3), round(t_start + span * done / total, 3)


def decode_ahead(
    pool: ThreadPoolExecutor, fn: Callable[[SourceFile], Decoded], items: list[SourceFile], depth: int
) -> Iterator[Decoded]:
    """Like pool.map, in order, but never more than `depth` results in memory."""
    pending: deque[Future[Decoded]] = deque()
    it = iter(items)
    for src in it:
        pending.append(pool.submit(fn, src))
        if len(pending) >= depth:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield result


def index_folder(
    root: Path,
    encoder: EncoderBase,
    store: Store,
    cfg: IndexerSettings,
    prune: bool = False,
    on_progress: ProgressFn | None = None,
    video: VideoSettings | None = None,
    speech: SpeechSettings | None = None,
    written: OcrSettings | None = None,
    people: FaceSettings | None = None,
    safety: SafetySettings | None = None,
) -> IndexReport:
    """Bring the index up to date with the image, video and audio files under root (audio files only
    when speech is enabled: sound is all they have); `written` reads the text in pictures when enabled,
    `people` finds the faces in pictures and keyframes when enabled, `safety` explicit content."""
    started = time.perf_counter()
    report = IndexReport()
    speech = speech or SpeechSettings()
    reader = ocr.reader(written) if written is not None and written.enabled else None
    faces = FaceReader() if people is not None and people.enabled else None
    check = ExplicitCheck(safety.classes, safety.min_score) if safety is not None and safety.enabled else None
    kinds = ALL_KINDS if speech.enabled else ALL_KINDS - {"audio"}
    media = _Media(MediaWorkers(cfg.media_workers, cfg.media_timeout_s), video or VideoSettings(), speech)
    with store.writer(), closing(media.workers):
        known = store.catalog.known_files()
        work = plan(walk(root, cfg.include, cfg.exclude, kinds, report.passed_over), known, root, prune)
        report.skipped = work.skipped
        if work.removed:
            store.write([], removed_uris=work.removed)
            report.removed = len(work.removed)
        batcher = Batcher(encoder, store, report, cfg.save_every_s)
        done = 0
        with ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="decode") as pool:
            fn = lambda src: decode_file(src, known.get(src.uri), encoder, cfg, media, reader, faces, check)  # noqa: E731
            for item in decode_ahead(pool, fn, work.todo, depth=cfg.batch_size * 3):
                report.stages["decode"] += item.seconds
                batcher.add(item)
                if len(batcher) >= cfg.batch_size:
                    batcher.flush()
                done += 1
                if on_progress:
                    on_progress(done, len(work.todo))
        batcher.flush()
        store.save()
    report.seconds = time.perf_counter() - started
    return report


class Batcher:
    """Collects decoded files; flush() encodes them and commits one catalog transaction."""

    def __init__(self, encoder: EncoderBase, store: Store, report: IndexReport, save_every_s: float):
        self.encoder, self.store, self.report = encoder, store, report
        self.items: list[Decoded] = []
        self.save_every_s = save_every_s
        self.last_save = time.perf_counter()

    def __len__(self) -> int:
        return sum(len(item.parts) for item in self.items)

    def add(self, item: Decoded) -> None:
        self.items.append(item)

    def flush(self) -> None:
        if not self.items:
            return
        items, self.items = self.items, []
        t0 = time.perf_counter()
        records, touched = encode_records(self.encoder, items)
        t1 = time.perf_counter()
        self.store.write(records, touched=touched)
        self.report.count(records, touched)
        self.report.stages["encode"] += t1 - t0
        self.report.stages["write"] += time.perf_counter() - t1
        if time.perf_counter() - self.last_save >= self.save_every_s:
            self.store.save()
            self.last_save = time.perf_counter()


def encode_records(
    encoder: EncoderBase, items: list[Decoded]
) -> tuple[list[ItemRecord], list[tuple[int, int]]]:
    """Encode decoded files together, each segment getting its own vector: a catalog record per new or
    changed file (its segments, or its error), and (item id, mtime_ns) of each file whose content hash
    proved unchanged."""
    for item in items:
        if item.read:
            _take_written(item, item.read, encoder, {})
            item.read = []
    parts = [part for item in items if item.error is None for part in item.parts]
    pictures = [part for part in parts if isinstance(part.made_from, np.ndarray)]
    words = [part for part in parts if isinstance(part.made_from, str)]
    if pictures:
        vectors = encoder.encode_pixels(np.stack([part.made_from for part in pictures]))
        for part, vector in zip(pictures, vectors, strict=True):
            part.segment.vector = vector
    if words:
        for part, vector in zip(words, encoder.encode_words([part.made_from for part in words]), strict=True):
            part.segment.vector = vector
    records, touched = [], []
    for item in items:
        src = item.src
        if item.unchanged_id is not None:
            touched.append((item.unchanged_id, src.mtime_ns))
            continue
        segments = [part.segment for part in item.parts] if item.error is None else []
        records.append(
            ItemRecord(
                src.uri,
                item.kind or src.kind,
                src.size,
                src.mtime_ns,
                item.content_hash,
                item.width,
                item.height,
                error=item.error,
                meta=item.meta,
                fields=item.fields,
                segments=segments,
                keywords=item.keywords,
            )
        )
    return records, touched
