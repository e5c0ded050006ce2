"""Deterministic generated media for tests and benchmarks: shot videos, speech, audio files, broken files.

Videos are cut from :class:`Shot` stills drawn by :mod:`mmsearch.synth.shapes`; every frame's timestamp is
its index at time base ``1/fps``, so shot boundaries fall exactly at :func:`shot_times`. Speech comes from
``espeak-ng``. :func:`bad_media` writes hostile files for robustness tests.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmsearch.synth.shapes import render

AUDIO_CODECS: dict[str, str] = {
    ".mp3": "libmp3lame",
    ".flac": "flac",
    ".ogg": "libopus",
    ".opus": "libopus",
    ".m4a": "aac",
    ".mp4": "aac",  # sound only, no video stream
    ".aac": "aac",
    ".aif": "pcm_s16be",
    ".wv": "wavpack",
    ".ac3": "ac3",  # 32, 44.1 or 48 kHz only
}
VP8_CONTAINERS = (".webm", ".ogg", ".ogv")  # take VP8 and Opus, not H.264 and AAC
BAD_MEDIA: dict[str, str] = {
    "truncated.mp4": "the first 40% of noaudio.mp4's bytes: H.264 data but no moov index (broken)",
    "random.mp4": "4 KiB of seeded random bytes (broken)",
    "empty.mp4": "0 bytes (broken)",
    "empty.wav": "0 bytes (broken)",
    "silent.wav": "3 s of digital silence, 16 kHz 16-bit mono (valid, no speech)",
    "noaudio.mp4": "2 s H.264 video, two 1 s shots, no audio stream (valid: keyframes, no speech)",
    "playlist.mp4": "an HLS playlist naming a URL on 127.0.0.1:9 (hostile: must not be fetched)",
    "concat.mp4": "an ffconcat script naming /etc/hostname (hostile: must not be read)",
}
_OPUS_RATE = 48000
_AUDIO_CHUNK = 1024


@dataclass(frozen=True)
class Shot:
    """A still picture held on screen for ``seconds``."""

    image: Image.Image
    seconds: float


def shot_of(
    colour: str, shape: str, seconds: float, size: tuple[int, int] = (320, 240), seed: int = 0
) -> Shot:
    """A still synthetic ``colour`` ``shape`` picture, letterboxed onto black at ``size`` (width, height)."""
    width, height = size
    side = min(width, height)
    gen = np.random.default_rng([seed, zlib.crc32(f"{colour}-{shape}".encode())])
    canvas = Image.new("RGB", size)
    canvas.paste(render(colour, shape, gen, side), ((width - side) // 2, (height - side) // 2))
    return Shot(canvas, seconds)


def sign_of(text: str, background: str, seconds: float, size: tuple[int, int] = (640, 360)) -> Shot:
    """Black capitals centred on a plain ``background``: a title card or a sign, for reading text in video."""
    canvas = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=size[1] // 6)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((size[0] - right - left) / 2, (size[1] - bottom - top) / 2), text, fill="black", font=font)
    return Shot(canvas, seconds)


def speak(text: str, rate_wpm: int = 160) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with espeak-ng; returns (float32 mono samples in [-1, 1], sample rate)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (e.g. `apt-get install espeak-ng`); speak() needs it")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            [exe, "-s", str(rate_wpm), "-w", str(wav), "--stdin"],
            input=text.encode(),
            check=True,
            capture_output=True,
        )
        with wave.open(str(wav), "rb") as f:
            if f.getsampwidth() != 2:
                raise RuntimeError(f"espeak-ng wrote {8 * f.getsampwidth()}-bit audio, expected 16-bit")
            rate, channels = f.getframerate(), f.getnchannels()
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    return (pcm.reshape(-1, channels).mean(axis=1) / 32768.0).astype(np.float32), rate


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    """``seconds`` of float32 digital silence at ``rate``."""
    return np.zeros(round(seconds * rate), dtype=np.float32)


def _frame_counts(shots: Sequence[Shot], fps: int) -> list[int]:
    if not shots:
        raise ValueError("need at least one shot")
    counts = [round(shot.seconds * fps) for shot in shots]
    if min(counts) < 1:
        raise ValueError(f"every shot must last at least one frame (1/{fps} s)")
    return counts


def shot_times(shots: Sequence[Shot], fps: int = 25) -> list[tuple[float, float]]:
    """(start, end) seconds of each shot as :func:`write_video` writes it (whole frames)."""
    times, start = [], 0
    for count in _frame_counts(shots, fps):
        times.append((start / fps, (start + count) / fps))
        start += count
    return times


def _mono(samples: np.ndarray) -> np.ndarray:
    """Samples as a flat float32 array clipped to [-1, 1]."""
    return np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)


def _encode_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, rate: int
) -> None:
    """Encode mono float samples in chunks; PyAV converts format, rate and frame size to the encoder's."""
    samples = _mono(samples)
    for start in range(0, len(samples), _AUDIO_CHUNK):
        frame = av.AudioFrame.from_ndarray(
            samples[None, start : start + _AUDIO_CHUNK], format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_video(
    path: Path,
    shots: Sequence[Shot],
    fps: int = 25,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    codec: str = "libx264",
    gop: int | None = None,
) -> Path:
    """Write ``shots`` as a yuv420p video (``codec`` + AAC; libvpx + Opus for .webm and Ogg), optionally with
    audio.

    Frame size is the first shot's, rounded down to even; each shot lasts ``round(seconds * fps)`` frames.
    ``gop`` sets the keyframe interval.
    """
    path = Path(path)
    counts = _frame_counts(shots, fps)
    vp8 = path.suffix.lower() in VP8_CONTAINERS
    if vp8 and codec == "libx264":
        codec = "libvpx"
    width, height = (side - side % 2 for side in shots[0].image.size)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = frame_time = Fraction(1, fps)  # the muxer may change the stream's on first write
        if gop is not None:
            video.codec_context.gop_size = gop
        sound = None
        if audio is not None:
            sound = container.add_stream("libopus" if vp8 else "aac", rate=audio_rate, layout="mono")
        index = 0
        for shot, count in zip(shots, counts, strict=True):
            pixels = np.asarray(shot.image.convert("RGB").resize((width, height)))
            for _ in range(count):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = index
                frame.time_base = frame_time
                container.mux(video.encode(frame))
                index += 1
        container.mux(video.encode(None))
        if sound is not None:
            _encode_audio(container, sound, audio, audio_rate)
    return path


def write_audio(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono float samples by suffix: .wav (16-bit PCM), .mp3, .flac, .ogg/.opus (48 kHz), .m4a (AAC)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".wav":
        pcm = np.rint(_mono(samples) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(rate)
            f.writeframes(pcm.tobytes())
        return path
    if suffix not in AUDIO_CODECS:
        raise ValueError(
            f"unsupported audio suffix {suffix!r}; expected .wav or one of {sorted(AUDIO_CODECS)}"
        )
    codec = AUDIO_CODECS[suffix]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=_OPUS_RATE if codec == "libopus" else rate, layout="mono")
        _encode_audio(container, stream, samples, rate)
    return path


def bad_media(folder: Path) -> dict[str, str]:
    """Write :data:`BAD_MEDIA` into ``folder``; returns {file name: what it is}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shots = [shot_of("green", "star", 1.0), shot_of("blue", "circle", 1.0)]
    whole = write_video(folder / "noaudio.mp4", shots).read_bytes()
    write_audio(folder / "silent.wav", silence(3.0), 16000)
    blobs = {
        "truncated.mp4": whole[: int(len(whole) * 0.4)],
        "random.mp4": np.random.default_rng(0).bytes(4096),
        "empty.mp4": b"",
        "empty.wav": b"",
        "playlist.mp4": b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n",
        "concat.mp4": b"ffconcat version 1.0\nfile /etc/hostname\n",
    }
    for name, data in blobs.items():
        (folder / name).write_bytes(data)
    return dict(BAD_MEDIA)


def write_footage(
    path: Path,
    seconds: float,
    size: tuple[int, int] = (1280, 720),
    fps: int = 25,
    shot_s: float = 4.0,
    seed: int = 0,
) -> Path:
    """Camera-like H.264 footage for benchmarks: a new shapes scene every ``shot_s`` seconds, each
    panning slowly, with sensor-like noise, so decoders see motion and a realistic bitrate."""
    from mmsearch.synth.shapes import classes

    width, height = size
    rng = np.random.default_rng(seed)
    options = list(classes())
    frames, per_shot = round(seconds * fps), max(1, round(shot_s * fps))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        frame_time = Fraction(1, fps)
        for index in range(frames):
            if index % per_shot == 0:
                colour, shape = options[rng.integers(len(options))]
                scene = np.asarray(render(colour, shape, rng, max(width, height) + per_shot))
                noise = rng.normal(0, 4, (8, height, width, 3)).astype(np.int16)
            step = index % per_shot
            crop = scene[step : step + height, step : step + width].astype(np.int16) + noise[index % 8]
            frame = av.VideoFrame.from_ndarray(np.clip(crop, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, frame_time
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path
