"""Media decoding runs in a child process: a crash or a hang costs one file, and the next file gets a
fresh worker. Real processes, real signals, a real blocking open (a FIFO) for the hang."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from mmsearch import MediaError
from mmsearch.config import SpeechSettings, VideoSettings
from mmsearch.indexer import index_folder
from mmsearch.indexer.isolate import MediaWorker
from mmsearch.indexer.worker import MediaRequest
from mmsearch.synth.media import shot_of, write_video

NO_SPEECH = SpeechSettings(enabled=False)


def request(path: Path) -> MediaRequest:
    return MediaRequest(str(path), VideoSettings(), NO_SPEECH, frame_side=64, thumbnail_px=64)


@pytest.fixture
def good_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "good.mp4", [shot_of("red", "circle", 1.0), shot_of("blue", "star", 1.0)])


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "stuck.mp4"
    os.mkfifo(path)  # opening it for reading blocks until a writer comes: a decoder that hangs
    return path


def test_a_hung_decoder_is_killed_after_the_silence_timeout_and_the_next_file_works(fifo, good_video):
    worker = MediaWorker(timeout_s=1.0)
    try:
        start = time.monotonic()
        with pytest.raises(MediaError, match="timed out: no progress for 1 s"):
            worker.extract(request(fifo))
        assert time.monotonic() - start < 10
        extract = worker.extract(request(good_video))
        assert [s.t_start for s in extract.scenes] == [0.0, 1.0]
    finally:
        worker.close()


def test_a_crashed_decoder_costs_only_its_file(fifo, good_video):
    worker = MediaWorker(timeout_s=60.0)
    try:
        worker.extract(request(good_video))  # the child is up
        pid = worker._proc.pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGSEGV)).start()
        with pytest.raises(MediaError, match="crashed \\(killed by SIGSEGV\\)"):
            worker.extract(request(fifo))
        assert len(worker.extract(request(good_video)).scenes) == 2 and worker._proc.pid != pid
    finally:
        worker.close()


def test_special_files_are_not_indexed(tmp_path, fifo, good_video, engine, settings):
    report = index_folder(tmp_path, engine.encoder, engine.store, settings.indexer, speech=NO_SPEECH)
    assert (report.indexed, report.failed) == (1, 0), "the FIFO was never opened"


def test_a_playlist_named_mp4_is_never_followed(tmp_path, engine, settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        (tmp_path / "media").mkdir()
        (tmp_path / "media" / "list.mp4").write_text(f"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:{port}/a.ts\n")
        (tmp_path / "media" / "cat.mkv").write_text(f"ffconcat version 1.0\nfile http://127.0.0.1:{port}/b\n")
        report = index_folder(tmp_path / "media", engine.encoder, engine.store, settings.indexer)
        assert report.failed == 2 and all("cannot read the file" in why for _, why in report.errors)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_a_changed_video_is_indexed_again_and_its_old_moments_are_gone(tmp_path, engine, settings):
    folder = tmp_path / "clips"
    folder.mkdir()
    path = write_video(folder / "clip.mp4", [shot_of("red", "circle", 1.0), shot_of("blue", "star", 1.0)])
    index_folder(folder, engine.encoder, engine.store, settings.indexer, speech=NO_SPEECH)
    old = set(engine.store.catalog.all_segment_ids())
    shots = [shot_of("green", "square", 0.6), shot_of("red", "cross", 0.8), shot_of("blue", "star", 1.0)]
    write_video(path, shots)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    report = index_folder(folder, engine.encoder, engine.store, settings.indexer, speech=NO_SPEECH)
    assert (report.indexed, report.skipped) == (1, 0)
    rows = engine.store.catalog.hits(engine.store.catalog.all_segment_ids())
    assert not old & set(rows) and sorted((r.t_start, r.t_end) for r in rows.values()) == [
        (0.0, 0.6),
        (0.6, 1.4),
        (1.4, 2.4),
    ]
    assert len(engine.store) == 3
