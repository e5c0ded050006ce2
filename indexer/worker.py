"""The media worker: a child process that reads video and audio files and transcribes their speech.

Started by indexer/isolate.py as `python -m mmsearch.indexer.worker READ_FD WRITE_FD`. It answers one
request at a time and sends a heartbeat while it works, so the parent can tell slow from stuck. It
imports neither torch nor the search model: it only decodes, picks keyframes and runs Whisper.
"""

from __future__ import annotations

import io
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from PIL import Image

from mmsearch.config import SpeechSettings, VideoSettings
from mmsearch.errors import MediaError, ModelUnavailableError
from mmsearch.indexer.avfile import Scene, read_media
from mmsearch.indexer.speech import Transcriber, Utterance

HEARTBEAT_S = 0.5
THUMBNAIL_QUALITY = 80


@dataclass
class MediaRequest:
    path: str
    video: VideoSettings
    speech: SpeechSettings
    frame_side: int  # keyframes are decoded with this short side (>= the model's input)
    thumbnail_px: int


@dataclass
class MediaExtract:
    duration: float
    width: int | None
    height: int | None
    meta: dict
    kind: str  # "video" or "audio", from the file's streams
    scenes: list[Scene] = field(default_factory=list)
    thumbnails: list[bytes] = field(default_factory=list)
    speech: list[Utterance] = field(default_factory=list)


def _jpeg(rgb, size: int) -> bytes:
    image = Image.fromarray(rgb)
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


class Worker:
    def __init__(self, send: Connection):
        self.send = send
        self.transcribers: dict[str, Transcriber] = {}
        self.last_beat = 0.0

    def beat(self) -> None:
        now = time.monotonic()
        if now - self.last_beat >= HEARTBEAT_S:
            self.send.send(("progress", None))
            self.last_beat = now

    def extract(self, req: MediaRequest) -> MediaExtract:
        path = Path(req.path)
        want_audio = req.speech.enabled
        read = read_media(path, req.video, req.frame_side, want_audio, self.beat)
        out = MediaExtract(read.duration, read.width, read.height, read.meta, read.kind, read.scenes)
        out.thumbnails = [_jpeg(s.image, req.thumbnail_px) for s in read.scenes]
        if read.audio is not None:
            key = req.speech.model_dump_json()
            transcriber = self.transcribers.setdefault(key, Transcriber(req.speech))
            out.speech = transcriber.transcribe(read.audio, read.audio_start, self.beat)
            out.meta["speech_segments"] = len(out.speech)
        if read.audio is not None and not out.speech:
            out.meta["speech"] = "none found"  # music, sounds: still indexed, shown as such
        return out


def main(read_fd: int, write_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    recv, send = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    send.send(("ready", None))  # imported and listening: from here on, silence means a stuck decoder
    worker = Worker(send)
    while True:
        try:
            req = recv.recv()
        except EOFError:
            return
        try:
            reply = ("ok", worker.extract(req))
        except MediaError as exc:
            reply = ("error", str(exc))
        except ModelUnavailableError as exc:
            reply = ("fatal", str(exc))
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        send.send(reply)


if __name__ == "__main__":
    # Run as the importable module, so the dataclasses it sends unpickle as mmsearch.indexer.worker.* in the
    # parent.
    from mmsearch.indexer import worker

    worker.main(int(sys.argv[1]), int(sys.argv[2]))
