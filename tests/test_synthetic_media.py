"""Generated media decode back with PyAV to exactly what was asked for."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mmsearch.synth.media import (
    BAD_MEDIA,
    bad_media,
    shot_of,
    shot_times,
    silence,
    speak,
    write_audio,
    write_video,
)

FPS = 25
SHOTS = [shot_of("red", "circle", 1.0), shot_of("blue", "star", 0.52), shot_of("green", "cross", 1.5)]


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _decoded_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "shots.mp4"
    return write_video(path, SHOTS, fps=FPS, audio=_tone(3.0, 16000), audio_rate=16000)


def test_shot_of_letterboxes_deterministically() -> None:
    shot = shot_of("red", "circle", 2.0, size=(320, 240), seed=3)
    assert shot.image.size == (320, 240)
    assert shot.seconds == 2.0
    pixels = np.asarray(shot.image)
    assert pixels[:, :40].max() == 0 and pixels[:, 280:].max() == 0  # black bars beside a 240 px square
    assert shot.image.tobytes() == shot_of("red", "circle", 2.0, seed=3).image.tobytes()
    assert shot.image.tobytes() != shot_of("red", "circle", 2.0, seed=4).image.tobytes()
    with pytest.raises(ValueError, match="unknown colour"):
        shot_of("mauve", "circle", 1.0)


def test_shot_times_are_frame_exact() -> None:
    assert shot_times(SHOTS, FPS) == [(0.0, 1.0), (1.0, 1.52), (1.52, 3.04)]
    with pytest.raises(ValueError, match="at least one frame"):
        shot_times([shot_of("red", "circle", 0.01)], FPS)


def test_video_frames_land_on_shot_times(video: Path) -> None:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 240)
        frames = list(container.decode(stream))
    assert stream.format.name == "yuv420p"
    assert [frame.time for frame in frames] == pytest.approx([i / FPS for i in range(76)])
    pixels = np.stack([frame.to_ndarray(format="rgb24").astype(np.float32) for frame in frames])
    changes = np.abs(np.diff(pixels, axis=0)).mean(axis=(1, 2, 3))
    cuts = [(i + 1) / FPS for i in np.flatnonzero(changes > 5)]
    assert cuts == pytest.approx([start for start, _ in shot_times(SHOTS, FPS)[1:]])


def test_video_has_audio_of_the_right_length(video: Path) -> None:
    with av.open(str(video)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        assert container.duration / av.time_base == pytest.approx(3.04, abs=0.05)
    assert _decoded_seconds(video) == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize(
    ("suffix", "video_codec", "audio_codec"), [(".mkv", "h264", "aac"), (".webm", "vp8", "opus")]
)
def test_other_containers(tmp_path: Path, suffix: str, video_codec: str, audio_codec: str) -> None:
    shots = [shot_of("yellow", "square", 0.4, size=(160, 120)), shot_of("purple", "triangle", 0.4)]
    path = write_video(tmp_path / f"v{suffix}", shots, audio=_tone(0.8, 16000))
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == video_codec
        assert container.streams.audio[0].codec_context.name == audio_codec
        frames = list(container.decode(video=0))
    assert len(frames) == 20
    assert {(frame.width, frame.height) for frame in frames} == {
        (160, 120)
    }  # second shot resized to the first


def test_gop_sets_keyframe_interval(tmp_path: Path) -> None:
    path = write_video(tmp_path / "gop.mp4", [shot_of("orange", "star", 1.0, size=(64, 48))], gop=5)
    with av.open(str(path)) as container:
        keys = [i for i, frame in enumerate(container.decode(video=0)) if frame.key_frame]
    assert keys == list(range(0, 25, 5))


def test_speak() -> None:
    # espeak-ng is required like everywhere speech is generated (.ci/run installs it): no skip
    samples, rate = speak("the quick brown fox jumps over the lazy dog")
    assert samples.dtype == np.float32 and samples.ndim == 1
    words = 60 * 9 / 160  # seconds nine words take at 160 words a minute
    assert abs(len(samples) / rate - words) < 0.25 * words
    assert 0.05 < np.abs(samples).max() <= 1.0
    fast, fast_rate = speak("the quick brown fox jumps over the lazy dog", rate_wpm=320)
    assert abs(len(fast) / fast_rate - words / 2) < 0.25 * words / 2


def test_silence() -> None:
    quiet = silence(1.5, 8000)
    assert quiet.dtype == np.float32 and quiet.shape == (12000,) and not quiet.any()


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [
        (".wav", "pcm_s16le"),
        (".mp3", "mp3"),
        (".flac", "flac"),
        (".ogg", "opus"),
        (".opus", "opus"),
        (".m4a", "aac"),
    ],
)
def test_write_audio_round_trips(tmp_path: Path, suffix: str, codec: str) -> None:
    path = write_audio(tmp_path / f"a{suffix}", _tone(1.25, 22050), 22050)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name.startswith(codec)
    assert _decoded_seconds(path) == pytest.approx(1.25, abs=0.06)


def test_write_audio_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported audio suffix"):
        write_audio(tmp_path / "a.aiff", silence(0.1), 16000)


def test_bad_media(tmp_path: Path) -> None:
    described = bad_media(tmp_path)
    assert described == BAD_MEDIA
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(described)
    whole, cut = (tmp_path / "noaudio.mp4").read_bytes(), (tmp_path / "truncated.mp4").read_bytes()
    assert 0 < len(cut) < len(whole) and whole.startswith(cut)
    assert (tmp_path / "random.mp4").stat().st_size == 4096
    assert (tmp_path / "empty.mp4").stat().st_size == (tmp_path / "empty.wav").stat().st_size == 0
    assert (tmp_path / "playlist.mp4").read_text().startswith("#EXTM3U")
    assert (tmp_path / "concat.mp4").read_text().startswith("ffconcat version 1.0")
    with av.open(str(tmp_path / "noaudio.mp4")) as container:
        assert not container.streams.audio
        assert sum(1 for _ in container.decode(video=0)) == 50
    with av.open(str(tmp_path / "silent.wav")) as container:
        samples = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(audio=0)])
    assert samples.shape == (48000,) and not samples.any()
    with pytest.raises(av.error.FFmpegError):
        av.open(str(tmp_path / "truncated.mp4")).close()
