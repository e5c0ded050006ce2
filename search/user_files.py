"""The one door a user's file is opened by: its size limit, and every reader's failure as a MediaError.

A file on a user's disk may be anything: truncated, bit-flipped, a bomb that declares 65535 x 65535
pixels, a polyglot, a link to a device. The readers that open it (Pillow and its plugins, LibRaw,
FFmpeg, filetype) fail in more ways than they document: struct errors, index errors, zero divisions,
their own exception types. Whatever one of them raises on a file's bytes becomes a MediaError that
names the reader and says why, so an index run records the file as failed and goes on, and a request
gets a 4xx. The pixel limit and the decoders themselves are applied in encode/images.py (pictures) and
indexer/avfile.py (video and audio, in worker processes with a timeout), both through `guarded`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from mmsearch.errors import MediaError, MediaTooLargeError

# Pillow warns between its own limit and twice it; the pixel limit that counts is ours
# (indexer.max_image_pixels, checked by encode/images.py), so the warning says nothing more.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# A broken EXIF or TIFF tag costs only the values it garbles (encode/photo_fields.py); Pillow's word on it
# would be printed once per file in every index run.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def read_file(path: Path, limit: int) -> bytes:
    """A regular file's bytes, refused past `limit` bytes (read at most limit + 1, so a file that grows
    while it is read is refused too)."""
    with guarded("the file"), path.open("rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise MediaError("not a regular file")
        if st.st_size > limit:
            raise MediaTooLargeError(f"file is {st.st_size} bytes, over the limit of {limit}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise MediaTooLargeError(f"file grew past the limit of {limit} bytes while it was read")
    return data


def content_hash(path: Path) -> str:
    """The SHA-256 of a file too large to hold (a video), read in chunks."""
    with guarded("the file"), path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextmanager
def guarded(reader: str) -> Iterator[None]:
    """Run a reader over a user's file: whatever it raises becomes a MediaError saying which reader
    failed and why (a MediaTooLargeError for a decompression bomb). MediaErrors pass as they are."""
    try:
        yield
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # a plugin's struct.error, IndexError, ZeroDivisionError ... on bad bytes
        raise MediaError(f"cannot read {reader}: {_why(exc)}") from exc


def _why(exc: Exception) -> str:
    """The system's or FFmpeg's own words where it gave some (strerror), else the exception's, named where
    its kind says more than its words (a plugin's AttributeError on a field the file left out)."""
    if getattr(exc, "strerror", None):
        return exc.strerror
    text = str(exc).strip()
    if text and type(exc) in (OSError, ValueError, EOFError, SyntaxError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def megabytes(size: int) -> str:
    """A size as people read it: 20971520 -> "21 MB", 4096 -> "4.1 kB"."""
    return f"{size / 1e6:.3g} MB" if size >= 1e6 else f"{size / 1e3:.3g} kB"
