"""Read video and audio files with PyAV: keyframes with the scenes they stand for, and the sound as
16 kHz mono for speech recognition, in one pass over the file.

Only local files in plain containers are opened. FFmpeg gets a Python file object, so no URL or protocol
(`concat:`, `http:`, ...) is ever parsed, and the demuxer is chosen by the file's extension instead of
by probing its content, so a playlist (HLS, ffconcat) named .mp4 is read as a broken MP4, never followed.
This module runs inside a media worker process (indexer/isolate.py): a decoder crash costs one file.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from mmsearch.config import VideoSettings
from mmsearch.encode.photo_fields import creation_time, video_place
from mmsearch.errors import MediaError
from mmsearch.indexer.scenes import SceneDetector, brightness, signature
from mmsearch.indexer.sources import media_suffix
from mmsearch.user_files import guarded

# The demuxer opened for each extension: named, never guessed, so a file cannot pick a demuxer (a
# playlist, concat:) by its content.
CONTAINERS = {
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".m4a", ".3gp", ".3g2", ".f4v"), "mov"),
    **dict.fromkeys((".mkv", ".webm"), "matroska"),
    **dict.fromkeys((".mpg", ".mpeg", ".vob"), "mpeg"),
    **dict.fromkeys((".mts", ".m2ts"), "mpegts"),
    **dict.fromkeys((".wmv", ".asf", ".wma"), "asf"),
    **dict.fromkeys((".ogg", ".ogv", ".opus"), "ogg"),
    **dict.fromkeys((".aif", ".aiff"), "aiff"),
    ".avi": "avi",
    ".gif": "gif",  # animated GIFs only (indexer/pipeline.py): stills are pictures
    ".m1v": "mpegvideo",
    ".flv": "flv",
    ".rm": "rm",
    ".swf": "swf",
    ".wav": "wav",
    ".mp3": "mp3",
    ".flac": "flac",
    ".aac": "aac",
    ".wv": "wv",
    ".ac3": "ac3",
    ".amr": "amr",
}
SPEECH_RATE = 16_000
MAX_BAD_PACKETS = 100  # a stream that keeps failing to decode is given up on


@dataclass
class Scene:
    t_start: float
    t_end: float
    image: np.ndarray  # RGB uint8, the scene's keyframe


@dataclass
class MediaRead:
    duration: float
    width: int | None = None
    height: int | None = None
    scenes: list[Scene] = field(default_factory=list)
    audio: np.ndarray | None = None  # float32 mono at SPEECH_RATE; None when there is no sound track
    audio_start: float = 0.0  # where the sound track starts, in seconds
    meta: dict = field(default_factory=dict)
    kind: str = "video"  # from the streams: "video" when there are moving pictures, else "audio"


def _rgb_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    scale = min(1.0, short_side / max(1, min(width, height)))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


class _VideoTrack:
    def __init__(self, stream, origin: float, cfg: VideoSettings, short_side: int):
        self.stream, self.origin, self.short_side = stream, origin, short_side
        self.detector = SceneDetector(cfg.scene_threshold, cfg.min_scene_s, cfg.max_gap_s, cfg.max_keyframes)
        rate = stream.average_rate or stream.guessed_rate
        self.frame_s = float(1 / rate) if rate else 0.04
        self.frames = 0
        self.end = 0.0

    def take(self, frame) -> None:
        t = (frame.time - self.origin) if frame.time is not None else self.frames * self.frame_s
        t = max(0.0, t)
        self.frames += 1
        self.end = max(self.end, t + self.frame_s)
        sig = signature(frame)
        strength = self.detector.wants(t, sig)
        if strength is not None:
            self.detector.add(t, strength, self._rgb(frame), brightness(sig))
        elif (value := self.detector.brighter(sig)) is not None:
            self.detector.use(self._rgb(frame), value)

    def _rgb(self, frame) -> np.ndarray:
        width, height = _rgb_size(frame.width, frame.height, self.short_side)
        return frame.to_ndarray(width=width, height=height, format="rgb24")

    def scenes(self, duration: float) -> list[Scene]:
        keys = self.detector.keyframes()
        ends = [k.t for k in keys[1:]] + [duration]
        return [Scene(round(k.t, 3), round(end, 3), k.image) for k, end in zip(keys, ends, strict=True)]


class _AudioTrack:
    def __init__(self, stream, origin: float):
        self.stream = stream
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SPEECH_RATE)
        self.chunks: list[np.ndarray] = []
        self.start: float | None = None
        self.origin = origin

    def take(self, frame) -> None:
        if self.start is None:
            self.start = max(0.0, (frame.time or 0.0) - self.origin)
        for out in self.resampler.resample(frame):
            self.chunks.append(out.to_ndarray().reshape(-1))

    def samples(self) -> np.ndarray:
        for out in self.resampler.resample(None):
            self.chunks.append(out.to_ndarray().reshape(-1))
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)


def read_media(
    path: Path,
    video: VideoSettings,
    frame_side: int,
    want_audio: bool,
    progress: Callable[[], None] = lambda: None,
) -> MediaRead:
    """Keyframes (videos) and sound (when `want_audio`) of one file, decoded in a single pass."""
    fmt = container_format(path)
    with open_container(path, fmt) as container:
        return _read(container, fmt, video, frame_side, want_audio, progress)


def container_format(path: Path) -> str:
    """The demuxer named for the file's type (CONTAINERS), never guessed from its content."""
    fmt = CONTAINERS.get(media_suffix(path) or path.suffix.lower())
    if fmt is None:
        raise MediaError(f"unsupported file type {path.suffix!r}")
    return fmt


@contextmanager
def open_container(path: Path, fmt: str) -> Iterator:
    """The file opened as a Python file object with the named demuxer: no URL or protocol is parsed, and
    an MP4 cannot point FFmpeg at other files (enable_drefs off). Every video and audio file comes in by
    this door: whatever FFmpeg (or the work done inside the block) raises on its bytes is a MediaError."""
    with (
        guarded(f"the file as {fmt}"),
        path.open("rb") as f,
        av.open(_QuietSeeks(f), format=fmt, options={"enable_drefs": "0"}) as container,
    ):
        yield container


class _QuietSeeks:
    """A file for FFmpeg whose failed seeks answer with FFmpeg's error code instead of raising: a hostile
    header asks for offsets before the start, and PyAV prints a traceback for each exception it drops."""

    def __init__(self, f: BinaryIO):
        self.read, self.tell, self._seek = f.read, f.tell, f.seek

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._seek(offset, whence)
        except (OSError, ValueError):
            return -errno.EINVAL  # AVERROR(EINVAL)


def moving_pictures(container) -> list:
    """The container's video streams, less cover art (an MP3's or M4A's attached picture)."""
    attached = av.stream.Disposition.attached_pic
    return [s for s in container.streams.video if not s.disposition & attached]


def _read(container, fmt, video, frame_side, want_audio, progress) -> MediaRead:
    """Keyframes when the file has moving pictures (whatever its extension says), and its sound."""
    origin = (container.start_time or 0) / av.time_base
    vtrack = atrack = None
    pictures = moving_pictures(container)
    if pictures:
        stream = pictures[0]
        stream.thread_type = "AUTO"
        vtrack = _VideoTrack(stream, origin, video, frame_side)
    elif not container.streams.audio:
        raise MediaError("the file has no video or audio stream")
    elif not want_audio:
        raise MediaError("the file holds sound only, and speech indexing is off")
    if want_audio and container.streams.audio:
        atrack = _AudioTrack(container.streams.audio[0], origin)
    tracks = {t.stream.index: t for t in (vtrack, atrack) if t is not None}
    bad: dict[int, int] = dict.fromkeys(tracks, 0)
    last_error = ""
    for n, packet in enumerate(container.demux([t.stream for t in tracks.values()])):
        track = tracks[packet.stream.index]
        try:
            for frame in packet.decode():
                track.take(frame)
        except av.FFmpegError as exc:  # one damaged packet is skipped; a stream that keeps failing ends
            bad[packet.stream.index] += 1
            last_error = str(exc)
            if bad[packet.stream.index] > MAX_BAD_PACKETS:
                stream = packet.stream
                raise MediaError(
                    f"the {stream.type} stream ({stream.codec_context.name}) cannot be decoded: "
                    f"{bad[stream.index]} damaged packets, the last: {exc}"
                ) from exc
        if n % 64 == 0:
            progress()
    if vtrack is not None and vtrack.frames == 0:
        raise MediaError(f"no decodable video frames{': ' + last_error if last_error else ''}")
    out = MediaRead(duration=0.0, meta={"container": fmt}, kind="video" if vtrack else "audio")
    if atrack is not None:
        out.audio = atrack.samples()
        out.audio_start = atrack.start or 0.0
        out.meta["audio_codec"] = atrack.stream.codec_context.name
    audio_end = out.audio_start + len(out.audio) / SPEECH_RATE if out.audio is not None else 0.0
    out.duration = round(max(vtrack.end if vtrack else 0.0, audio_end), 3)
    if vtrack is not None:
        out.width, out.height = vtrack.stream.codec_context.width, vtrack.stream.codec_context.height
        out.scenes = vtrack.scenes(out.duration)
        out.meta["video_codec"] = vtrack.stream.codec_context.name
        out.meta["fps"] = round(1 / vtrack.frame_s, 3)
        out.meta["frames"] = vtrack.frames
    if out.duration <= 0:
        raise MediaError("the file holds no decodable audio or video")
    out.meta["duration"] = out.duration
    created = creation_time(container.metadata.get("creation_time"))
    if created:
        out.meta["created"] = created
    if place := video_place(container.metadata):
        out.meta["place"] = place
    return out
