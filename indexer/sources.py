"""Walk a folder for media files: deterministic order, globs, and no links that leave the root."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import filetype

from mmsearch.encode.images import RAW_EXTENSIONS
from mmsearch.errors import MediaError
from mmsearch.user_files import guarded

IMAGE_EXTENSIONS = (
    frozenset(
        {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif", ".psd"}
    )
    | RAW_EXTENSIONS
)
# Every container the bundled FFmpeg demuxes that people keep video or sound in (indexer/avfile.py names
# the demuxer for each). A file's kind here is a first guess: its streams decide (an Ogg holding Theora
# video is a video; an MP4 holding only sound is audio).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".3gp", ".3g2", ".f4v", ".mkv", ".webm", ".avi", ".ogv", ".mpg", ".mpeg"}
    | {".m1v", ".vob", ".mts", ".m2ts", ".wmv", ".asf", ".flv", ".rm", ".swf"}  # not .ts: TypeScript too
)
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac", ".aif", ".aiff", ".wv", ".ac3", ".wma"}
    | {".amr"}
)
KIND_BY_EXTENSION = {
    **dict.fromkeys(IMAGE_EXTENSIONS, "image"),
    **dict.fromkeys(VIDEO_EXTENSIONS, "video"),
    **dict.fromkeys(AUDIO_EXTENSIONS, "audio"),
}
ALL_KINDS = frozenset({"image", "video", "audio"})


@dataclass(frozen=True)
class SourceFile:
    path: Path
    uri: str
    kind: str
    size: int
    mtime_ns: int


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """fnmatch on the path relative to the root (`*` crosses folders); a pattern with no `/` also
    matches the file name alone, so `*.png` means every PNG at any depth."""
    name = rel.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(rel, p) or ("/" not in p and fnmatch.fnmatchcase(name, p)) for p in patterns
    )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except (ValueError, OSError):
        return False


def media_suffix(path: Path) -> str | None:
    """The media extension a file goes by: its own when it is one we know, else the one its first bytes
    say (a camera file with no extension, a video saved as .bin or .dat), else None. What the decoders
    are told to expect follows it (indexer/avfile.py), so a probe decides, never a guess of FFmpeg's."""
    suffix = path.suffix.lower()
    if suffix in KIND_BY_EXTENSION:
        return suffix
    try:
        with guarded("the file's first bytes"):
            guess = filetype.guess(str(path))
    except MediaError:
        return None
    sniffed = f".{guess.extension}" if guess is not None else None
    return sniffed if sniffed in KIND_BY_EXTENSION else None


def kind_of(path: Path) -> str | None:
    suffix = media_suffix(path)
    return KIND_BY_EXTENSION[suffix] if suffix else None


def passed_over_as(path: Path, kind: str | None) -> str:
    """How a file that is not indexed is counted: its extension, or why its kind is not wanted."""
    if kind == "audio":
        return "audio (speech is off)"
    return path.suffix.lower() or "(no extension)"


def walk(
    root: Path,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    kinds: frozenset[str] = ALL_KINDS,
    passed_over: Counter[str] | None = None,
) -> Iterator[SourceFile]:
    """Yield media files of the given kinds under root in sorted order. Symbolic links are followed
    only while their target stays inside the root; each real folder is visited once (by its real path
    when it has one), so link loops end and no file is indexed twice. Files of no wanted kind are
    counted in `passed_over` (by extension), so a run can say what it left and why. Hidden files and
    folders (a name starting with a dot) below the root are left out."""
    root = root.resolve()
    passed_over = Counter() if passed_over is None else passed_over
    if root.is_file():
        kind = kind_of(root)
        if kind in kinds:
            st = root.stat()
            yield SourceFile(root, str(root), kind, st.st_size, st.st_mtime_ns)
        else:
            passed_over[passed_over_as(root, kind)] += 1
        return
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        real = os.path.realpath(folder)
        if real in seen or not _inside(here, root):
            dirs[:] = []
            continue
        seen.add(real)
        # Hidden folders (.git, .thumbnails, .Trash) are not the user's media; a hidden file is counted.
        dirs[:] = sorted(
            (d for d in dirs if not d.startswith(".")),
            key=lambda d: (os.path.islink(os.path.join(folder, d)), d),
        )  # real folders win over links
        for name in sorted(files):
            if name.startswith("."):
                passed_over["hidden"] += 1
                continue
            path = here / name
            rel = path.relative_to(root).as_posix()
            if not _inside(path, root):
                continue
            if (include and not _matches(rel, include)) or (exclude and _matches(rel, exclude)):
                continue
            try:
                st = path.stat()
            except OSError:
                continue  # vanished or a dangling link
            if not stat.S_ISREG(st.st_mode):
                continue  # a FIFO or device would block the reader, the sniffing of its first bytes too
            kind = kind_of(path)
            if kind not in kinds:
                passed_over[passed_over_as(path, kind)] += 1
                continue
            yield SourceFile(path, str(path), kind, st.st_size, st.st_mtime_ns)
